"""Linear probe on frozen tokens: how much class information a tokenizer's codes hold.

The paper's measure of a tokenizer's semantics: encode every image, replace each token by the quantized vector
it stands for (:meth:`~semtok.tokenizers.base.Tokenizer.code_vectors`), mean-pool over the token grid
(``[N, D]``), standardise with the train split's statistics and fit a multinomial logistic regression
(full-batch L-BFGS in float64 from zeros, so the result is deterministic). The L2 penalty is picked from
:data:`WEIGHT_DECAYS` by top-1 on a seeded, class-stratified 10 % of the train split (never on val); the
classifier is then refit on the whole train split and scored on val.

The mean-pooled code vectors are the default *probe input*; :data:`PROBE_INPUTS` names the others (the same ids,
other features): ``flat`` (the code vectors of every grid cell, ``[h * w * D]``), ``decoded`` (mean-pooled
``decode_features(ids)``, the tokenizer's reconstruction in teacher space; feature tokenizers only) and
``histogram`` (the bag of codes: each code's share of the grid, ``[num_codes]``). A tokenizer whose codes are
small unit vectors (VQ-KD's 32-d cosine codebook) loses most of its class information to mean pooling, one whose
codes are teacher-space centroids (Cluster) much less: compare tokenizers on the same input, and report it (every
result records its ``input``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from semtok.data import build_dataset
from semtok.errors import SemtokError
from semtok.evaluation.common import iterate_batches
from semtok.evaluation.probe_inputs import PROBE_INPUTS, check_probe_input, token_features
from semtok.hub.pretrained import resolve_model_dir
from semtok.tokenizers.base import Tokenizer

WEIGHT_DECAYS: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
"""Candidate L2 penalties (on ``mean cross-entropy + wd / 2 * ||W||^2``) searched on the train hold-out."""


@torch.no_grad()
def pooled_code_vectors(
    tokenizer: Tokenizer,
    dataset: Any,
    batch_size: int = 128,
    progress: bool = False,
    desc: str = "encode",
    inputs: str = "pooled",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode a data set and mean-pool its code vectors over the token grid (or another probe input).

    Args:
        tokenizer: any tokenizer (eval mode; nothing in it changes).
        dataset: items ``(image [3, H, W] float in [-1, 1], label int)``, read in index order.
        inputs: a key of :data:`PROBE_INPUTS` (see :func:`token_features`).

    Returns:
        ``features_NF`` float32 ``[N, F]`` (pooled: F = the tokenizer's code dimension) and ``labels_N`` int64
        (-1 for unlabeled items).
    """
    if batch_size < 1:
        raise SemtokError(f"batch_size: expected an int >= 1, got {batch_size}")
    check_probe_input(tokenizer, inputs)
    features, labels = [], []
    for images, batch_labels in iterate_batches(dataset, batch_size, progress, desc):
        ids_BHW = tokenizer.encode(images)
        features.append(token_features(tokenizer, ids_BHW, inputs))
        labels.append(batch_labels.long())
    if not features:
        raise SemtokError(f"{desc}: the data set has no images")
    return torch.cat(features), torch.cat(labels)


def standardize(train_ND: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Subtract the train mean and divide by the train std (per feature; a constant feature is only centred).

    Returns float64 copies of ``train_ND`` and each of ``others`` (all ``[*, D]``).
    """
    train = train_ND.double()
    mean = train.mean(dim=0)
    std = train.std(dim=0, unbiased=False)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))
    return [(x.double() - mean) / std for x in (train, *others)]


def fit_logistic_regression(
    x_ND: torch.Tensor,
    y_N: torch.Tensor,
    num_classes: int,
    weight_decay: float,
    max_iter: int = 500,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression by full-batch L-BFGS (strong Wolfe line search) from zero weights.

    Minimises ``mean cross-entropy + weight_decay / 2 * ||W||^2`` (the bias is not penalised).

    Args:
        x_ND: features ``[N, D]`` (standardised; computed in float64).
        y_N: labels int64 ``[N]`` in ``[0, num_classes)``.
        weight_decay: L2 penalty >= 0.
        max_iter: L-BFGS iterations (each one a full pass over the data, plus line-search passes).

    Returns:
        ``(weight [D, K], bias [K])`` float64; logits are ``x @ weight + bias``.
    """
    if weight_decay < 0:
        raise SemtokError(f"weight_decay: expected >= 0, got {weight_decay}")
    if max_iter < 1:
        raise SemtokError(f"max_iter: expected an int >= 1, got {max_iter}")
    x = x_ND.double()
    weight = torch.zeros(x.shape[1], num_classes, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-9,
        tolerance_change=1e-12,
        history_size=20,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y_N) + 0.5 * weight_decay * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    return weight.detach(), bias.detach()


def top1(weight: torch.Tensor, bias: torch.Tensor, x_ND: torch.Tensor, y_N: torch.Tensor) -> float:
    """Share of rows of ``x_ND`` whose argmax logit is their label, in [0, 1] (0 for no rows)."""
    if len(y_N) == 0:
        return 0.0
    return float(((x_ND.double() @ weight + bias).argmax(dim=1) == y_N).double().mean())


def stratified_holdout(
    y_N: torch.Tensor, fraction: float = 0.1, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded class-stratified split of indices ``0..N-1``: ``(fit_indices, holdout_indices)``, both int64.

    Each class with at least two items gives ``max(1, round(fraction * count))`` items (at most count - 1) to
    the hold-out; a class with one item stays in the fit part.
    """
    generator = torch.Generator().manual_seed(seed)
    fit, holdout = [], []
    for label in torch.unique(y_N).tolist():
        members = (y_N == label).nonzero().squeeze(1)
        members = members[torch.randperm(len(members), generator=generator)]
        count = len(members)
        take = min(count - 1, max(1, round(fraction * count))) if count >= 2 else 0
        holdout.append(members[:take])
        fit.append(members[take:])
    return torch.cat(fit).sort().values, torch.cat(holdout).sort().values


def probe_features(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    num_classes: int | None = None,
    weight_decays: Sequence[float] = WEIGHT_DECAYS,
    seed: int = 0,
    max_iter: int = 500,
) -> dict[str, Any]:
    """Fit and score the linear probe on given features (the part of :func:`linear_probe` after encoding).

    Args:
        train_x, val_x: features ``[N, D]`` / ``[M, D]`` (any float dtype; standardised here with train stats).
        train_y, val_y: labels int64 in ``[0, num_classes)``.
        num_classes: default ``max(train_y, val_y) + 1``.
        weight_decays: the L2 penalties to choose from on a seeded 10 % hold-out of train.

    Returns:
        ``val_top1``, ``train_top1`` and ``holdout_top1`` in [0, 1], ``val_loss`` (mean cross-entropy, nats),
        the chosen ``weight_decay``, ``weight_decay_search`` ({penalty: hold-out top-1}), ``num_classes``,
        ``chance`` (share of the commonest val class) and ``fit_seconds``.
    """
    start = time.perf_counter()
    if train_x.ndim != 2 or val_x.ndim != 2 or train_x.shape[1] != val_x.shape[1]:
        raise SemtokError(
            f"probe features must be [N, D] with the same D, got {list(train_x.shape)} and {list(val_x.shape)}"
        )
    if len(train_x) != len(train_y) or len(val_x) != len(val_y):
        raise SemtokError("probe: features and labels differ in length")
    if not weight_decays:
        raise SemtokError("probe: weight_decays is empty")
    train_y, val_y = train_y.long(), val_y.long()
    if num_classes is None:
        num_classes = int(torch.cat([train_y, val_y]).max()) + 1
    if len(torch.unique(train_y)) < 2:
        raise SemtokError(
            f"probe: the train split needs at least 2 classes, it has {len(torch.unique(train_y))}"
        )

    fit_idx, holdout_idx = stratified_holdout(train_y, 0.1, seed)
    fit_x, holdout_x = standardize(train_x[fit_idx], train_x[holdout_idx])
    search: dict[float, tuple[float, float]] = {}
    for wd in weight_decays:
        weight, bias = fit_logistic_regression(fit_x, train_y[fit_idx], num_classes, float(wd), max_iter)
        logits = holdout_x @ weight + bias
        accuracy = top1(weight, bias, holdout_x, train_y[holdout_idx])
        loss = float(F.cross_entropy(logits, train_y[holdout_idx])) if len(holdout_idx) else 0.0
        search[float(wd)] = (accuracy, loss)
    # best hold-out top-1; ties go to the lower hold-out cross-entropy
    best_wd = max(search, key=lambda wd: (search[wd][0], -search[wd][1]))

    train_std, val_std = standardize(train_x, val_x)
    weight, bias = fit_logistic_regression(train_std, train_y, num_classes, best_wd, max_iter)
    val_loss = float(F.cross_entropy(val_std @ weight + bias, val_y)) if len(val_y) else math.nan
    counts = torch.bincount(val_y, minlength=num_classes)
    return {
        "val_top1": top1(weight, bias, val_std, val_y),
        "train_top1": top1(weight, bias, train_std, train_y),
        "holdout_top1": search[best_wd][0],
        "val_loss": val_loss,
        "weight_decay": best_wd,
        "weight_decay_search": {f"{wd:g}": round(acc, 4) for wd, (acc, _) in search.items()},
        "num_classes": num_classes,
        "chance": float(counts.max()) / max(len(val_y), 1),
        "fit_seconds": time.perf_counter() - start,
    }


def _check_labels(dataset: Any, data: str, split: str) -> None:
    labels = getattr(dataset, "labels", None)
    if labels is not None and len(labels) and int(torch.as_tensor(labels).min()) < 0:
        raise SemtokError(
            f"data set {data!r} ({split} split) has no labels: the linear probe needs class subfolders "
            "(one per class) or 'mnist5k'"
        )


def _describe_probe(
    tokenizer_dir: Path,
    tokenizer: Tokenizer,
    source: dict[str, Any],
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_y: torch.Tensor,
    inputs: str = "pooled",
) -> dict[str, Any]:
    """The first entries of a probe's results: the tokenizer, ``source`` (what was probed), the split sizes,
    the probe input, the feature shape and the pooling and classifier used."""
    return {
        "tokenizer": str(tokenizer_dir),
        "kind": tokenizer.kind,
        **source,
        "train_images": len(train_y),
        "val_images": len(val_y),
        "grid": list(tokenizer.grid_size),
        "input": inputs,
        "feature_dim": int(train_x.shape[1]),
        "pooling": PROBE_INPUTS[inputs],
        "classifier": "multinomial logistic regression, L-BFGS (fp64), standardised features",
    }


def linear_probe(
    path: str | Path,
    data: str = "mnist5k",
    batch_size: int = 128,
    max_iter: int = 500,
    seed: int = 0,
    progress: bool = True,
    weight_decays: Sequence[float] = WEIGHT_DECAYS,
    labels: str = "auto",
    inputs: str = "pooled",
) -> dict[str, Any]:
    """Linear-probe top-1 of the tokenizer at ``path`` (a run folder or tokenizer folder) on ``data``.

    Encodes the train and val splits of ``data`` ("mnist5k" or a labelled image folder; no augmentation) at
    the tokenizer's ``image_size``, mean-pools the code vectors over the grid and fits the probe (see the
    module docstring and :func:`probe_features`). ``max_iter``: L-BFGS iterations per fit; ``seed``: the
    hold-out split; ``labels``: "auto" or "folders" (an image folder's reading; "none" has no labels to probe);
    ``inputs``: the probe input (a key of :data:`PROBE_INPUTS`; "pooled" is the protocol above).

    Returns:
        a JSON-ready dict: ``tokenizer``, ``kind``, ``data``, ``train_images``, ``val_images``, ``grid``,
        ``input``, ``feature_dim`` (D), the entries of :func:`probe_features` (``val_top1`` and ``train_top1`` in
        [0, 1], ...) and ``encode_seconds`` / ``seconds`` (wall clock, encoding included).

    Raises:
        SemtokError: a bad path, a data set without labels (naming it), fewer than two train classes.
    """
    if labels == "none":
        raise SemtokError("labels 'none': the linear probe needs labels (use auto or folders)")
    start = time.perf_counter()
    tokenizer_dir = resolve_model_dir(path, "tokenizer")
    tokenizer = Tokenizer.from_pretrained(tokenizer_dir)
    check_probe_input(tokenizer, inputs)
    image_size = tokenizer.config.image_size
    splits = {}
    for split in ("train", "val"):
        dataset = build_dataset(data, split, image_size, augment="none", labels=labels)
        _check_labels(dataset, data, split)
        splits[split] = dataset
    encoded = {
        split: pooled_code_vectors(tokenizer, dataset, batch_size, progress, f"probe: encode {split}", inputs)
        for split, dataset in splits.items()
    }
    for split, (_, labels) in encoded.items():
        if len(labels) and int(labels.min()) < 0:
            raise SemtokError(
                f"data set {data!r} ({split} split) has unlabeled images: the linear probe needs labels"
            )
    encode_seconds = time.perf_counter() - start
    (train_x, train_y), (val_x, val_y) = encoded["train"], encoded["val"]
    num_classes = getattr(splits["train"], "num_classes", 0) or None
    results = _describe_probe(tokenizer_dir, tokenizer, {"data": data}, train_x, train_y, val_y, inputs)
    results.update(probe_features(train_x, train_y, val_x, val_y, num_classes, weight_decays, seed, max_iter))
    results["encode_seconds"] = encode_seconds
    results["seconds"] = time.perf_counter() - start
    return results


def pooled_from_token_file(
    tokenizer: Tokenizer, path: str | Path, batch_size: int = 512, inputs: str = "pooled"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean-pooled code vectors ``[N, D]`` float32 (or another probe input's features, see
    :func:`token_features`) and labels ``[N]`` of a token file written by this tokenizer."""
    from semtok.data.token_file import read_token_file

    ids, labels, manifest = read_token_file(path)
    if int(manifest["num_codes"]) != tokenizer.num_codes or list(manifest["grid"]) != list(
        tokenizer.grid_size
    ):
        raise SemtokError(f"token file '{path}' was not written by this tokenizer (codes or grid differ)")
    features = []
    with torch.inference_mode():
        for start in range(0, ids.shape[0], batch_size):
            chunk = torch.from_numpy(ids[start : start + batch_size].astype("int64"))
            features.append(token_features(tokenizer, chunk, inputs))
    return torch.cat(features), torch.from_numpy(labels.astype("int64"))


def probe_token_files(
    path: str | Path,
    train_tokens: str | Path,
    val_tokens: str | Path,
    max_iter: int = 500,
    seed: int = 0,
    inputs: str = "pooled",
) -> dict[str, Any]:
    """:func:`linear_probe` on already tokenized splits (``semtok tokenize`` files of the tokenizer at ``path``):
    the same features without encoding the images again. Token files with several augmented views are not
    the probe's protocol (one unaugmented view per image): refused. ``inputs``: the probe input (a key of
    :data:`PROBE_INPUTS`, recorded as ``input``; "decoded" needs a feature tokenizer)."""
    from semtok.data.token_file import read_token_file

    start = time.perf_counter()
    tokenizer_dir = resolve_model_dir(path, "tokenizer")
    tokenizer = Tokenizer.from_pretrained(tokenizer_dir)
    check_probe_input(tokenizer, inputs)
    for tokens in (train_tokens, val_tokens):
        data = read_token_file(tokens)[2].get("data", {})
        if data.get("augment", "none") != "none" or int(data.get("views", 1)) != 1:
            raise SemtokError(f"token file '{tokens}': the probe needs one unaugmented view per image")
    (train_x, train_y), (val_x, val_y) = (
        pooled_from_token_file(tokenizer, t, inputs=inputs) for t in (train_tokens, val_tokens)
    )
    if int(train_y.min()) < 0 or int(val_y.min()) < 0:
        raise SemtokError(
            f"token files '{train_tokens}' / '{val_tokens}' have unlabeled images: the probe needs labels"
        )
    tokens = {"tokens": [str(train_tokens), str(val_tokens)]}
    results = _describe_probe(tokenizer_dir, tokenizer, tokens, train_x, train_y, val_y, inputs)
    results.update(probe_features(train_x, train_y, val_x, val_y, None, WEIGHT_DECAYS, seed, max_iter))
    results["seconds"] = time.perf_counter() - start
    return results
