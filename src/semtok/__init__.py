"""semtok: image tokenizers built from image-understanding models.

The Python API (each name matches a CLI verb; every path may be a run folder or a model folder)::

    import semtok

    tokenizer = semtok.load_tokenizer("runs/demo/decoder")      # Tokenizer: encode / decode
    manifest = semtok.tokenize("runs/demo/decoder", "mnist5k", "train", "tokens/train")
    ids, labels, info = semtok.load_tokens(manifest)
    sampler = semtok.load_sampler("runs/demo/ar")               # AR or masked model + the tokenizer it records
    images = semtok.sample(sampler, [0, 1, 2], seed=0)          # [3, 3, H, W] float in [-1, 1]
    metrics = semtok.evaluate("runs/demo/decoder", "mnist5k")   # tokenizer metrics; AR / masked run: generation
    top1 = semtok.probe("runs/demo/decoder", "mnist5k")
    summary = semtok.train("vqkd", "vqkd-mnist", "runs/vqkd", overrides=["train.steps=100"])

Everything is imported lazily, so ``import semtok`` (and ``semtok --help``) does not pay for torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from semtok.errors import SemtokError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from semtok.generators.sampler import Sampler
    from semtok.generators.sampling import SamplingConfig
    from semtok.tokenizers.base import Tokenizer

__version__ = "0.1.0"
__all__ = [
    "SamplingConfig",
    "SemtokError",
    "Tokenizer",
    "__version__",
    "evaluate",
    "load_sampler",
    "load_tokenizer",
    "load_tokens",
    "probe",
    "sample",
    "tokenize",
    "train",
]


def __getattr__(name: str) -> Any:
    # Imported lazily so `semtok --help` does not pay for torch.
    if name == "Tokenizer":
        from semtok.tokenizers import Tokenizer

        return Tokenizer
    if name == "tokenize":  # tokenize(path, data, split, out, batch_size=128, views=1, augment="none", ...)
        from semtok.pipelines.tokenize import tokenize_dataset

        return tokenize_dataset
    if name == "SamplingConfig":
        from semtok.generators.sampling import SamplingConfig

        return SamplingConfig
    raise AttributeError(f"module 'semtok' has no attribute {name!r}")


def load_tokenizer(path: str | Path, map_location: str = "cpu") -> Tokenizer:
    """The tokenizer in ``path`` (a run folder holding ``tokenizer/``, or a tokenizer folder), in eval mode.

    ``tokenizer.encode(images)``: images ``[B, 3, H, W]`` float in [-1, 1] (H = W = ``tokenizer.config.image_size``)
    -> ids ``[B, h, w]`` int64 in ``[0, tokenizer.num_codes)`` (``(h, w) = tokenizer.grid_size``).
    ``tokenizer.decode(ids)`` -> images ``[B, 3, H, W]`` float in about [-1, 1] (needs a pixel decoder).
    """
    from semtok.hub.pretrained import resolve_model_dir
    from semtok.tokenizers.base import Tokenizer

    return Tokenizer.from_pretrained(resolve_model_dir(path, "tokenizer"), map_location=map_location)


def load_sampler(path: str | Path, tokenizer: str | Path | None = None) -> Sampler:
    """The proposal network in ``path`` (an AR or masked run folder holding ``ar/`` or ``nar/``, or a model folder
    of kind ``ar`` or ``nar``) with the tokenizer that decodes its tokens: the one recorded at training time, or
    ``tokenizer`` (same codebook size and grid).

    ``sampler.family``: ``"ar"`` or ``"masked"``; ``sampler.num_classes``: class labels run over
    ``[0, num_classes)`` (0: an unconditional model); ``sampler.class_names``;
    ``sampler.sample(labels, SamplingConfig(...), seed)`` -> (images, ids).
    """
    from semtok.generators.sampler import Sampler

    return Sampler(path, tokenizer)


def _sampling(kind: str, **settings: Any) -> SamplingConfig:
    """The :class:`SamplingConfig` of the keyword arguments of :func:`sample` / :func:`evaluate`; a masked-only
    setting away from its default is refused for an AR model (``kind`` "ar")."""
    from semtok.cli.checks import MASKED_ONLY
    from semtok.generators.sampling import SamplingConfig

    defaults = SamplingConfig()
    if kind == "ar":
        for name in MASKED_ONLY:
            if settings[name] != getattr(defaults, name):
                raise SemtokError(f"{name}={settings[name]!r} applies to masked models, not to an AR model")
    return SamplingConfig(**settings)


def sample(
    model: str | Path | Sampler,
    labels: Sequence[int] | torch.Tensor | None = None,
    *,
    prompts: Sequence[str] | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: int = 600,
    top_p: float = 0.92,
    cfg_scale: float = 1.75,
    steps: int = 12,
    schedule: str = "cosine",
    choice_temperature: float = 4.5,
    cfg_ramp: bool = False,
    batch_size: int = 64,
    progress: bool = False,
) -> torch.Tensor:
    """One image per class label (or per prompt, for a text model), drawn by an AR or masked model and decoded by
    its tokenizer.

    Args:
        model: a :class:`~semtok.generators.sampler.Sampler` (:func:`load_sampler`) or an AR or masked run / model
            folder.
        labels: ``[B]`` int class labels in ``[0, num_classes)`` (ignored by an unconditional model).
        prompts: a text model's ``B`` prompts instead (encoded by the text encoder it records; an empty prompt
            samples unconditionally).
        seed: batch ``j`` of ``batch_size`` labels is drawn with seed ``seed * 1000003 + j`` (reproducible).
        temperature, top_k, top_p, cfg_scale: the sampling settings of both families (defaults: the paper's;
            ``top_k`` 0 and ``top_p`` 1 switch those filters off, ``cfg_scale`` 1 switches guidance off).
        steps, schedule, choice_temperature, cfg_ramp: masked models only (an AR model refuses other values than
            the defaults): parallel decoding steps, the masking schedule (``cosine``, ``arccos`` or ``linear``), the
            Gumbel temperature on the confidences, and a guidance scale ramped linearly over the steps.

    Returns:
        images ``[B, 3, H, W]`` float32 in [-1, 1].
    """
    import torch

    from semtok.generators.sampler import Sampler

    sampler = model if isinstance(model, Sampler) else Sampler(model)
    sampling = _sampling(
        sampler.kind,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        cfg_scale=cfg_scale,
        steps=steps,
        schedule=schedule,
        choice_temperature=choice_temperature,
        cfg_ramp=cfg_ramp,
    )
    if sampler.is_text or prompts is not None:
        if not prompts or labels is not None or isinstance(prompts, str):
            raise SemtokError(
                "a text model samples from prompts: give prompts=[...] (a list of strings), not labels"
            )
        return sampler.sample(None, sampling, seed, batch_size, progress, prompts=list(prompts))[0]
    labels_B = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
    if labels_B.numel() == 0:
        raise SemtokError("labels: expected at least one class label")
    if sampler.num_classes > 0:
        for label in {int(v) for v in labels_B}:
            sampler.check_class(label)
    images, _ = sampler.sample(labels_B, sampling, seed, batch_size, progress)
    return images


def _generator_kind(path: str | Path) -> str | None:
    """``"ar"`` / ``"nar"`` when ``path`` holds a proposal network (run or model folder), else None."""
    from semtok.cli.checks import generator_kind

    return generator_kind(path)


def evaluate(
    path: str | Path,
    data: str | None = None,
    split: str = "val",
    *,
    batch_size: int = 128,
    limit: int | None = None,
    fid: bool = True,
    inception_weights: str | None = None,
    lpips_weights: str | None = None,
    judge: str | Path | None = None,
    seed: int = 0,
    temperature: float = 1.0,
    top_k: int = 600,
    top_p: float = 0.92,
    cfg_scale: float = 1.75,
    steps: int = 12,
    schedule: str = "cosine",
    choice_temperature: float = 4.5,
    cfg_ramp: bool = False,
    clip_weights: str | None = None,
    clip_model: str = "ViT-B-16",
    progress: bool = False,
) -> dict[str, Any]:
    """Metrics of a tokenizer, or of an AR or masked model's samples when ``path`` holds one.

    A tokenizer (run or tokenizer folder): codebook ``usage`` in [0, 1], ``perplexity`` (exp of the code entropy),
    ``entropy_nats``, ``teacher_cosine`` in [-1, 1]; with a pixel decoder ``psnr`` (dB), ``ssim`` in [-1, 1],
    ``lpips`` (when its weights are present) and ``rfid`` (``fid=False`` skips it: the slowest metric on a CPU).

    An AR or masked model (run or model folder): one sample per label of ``split`` (sampling settings as in
    :func:`sample`, the masked-only ones for a masked model),
    ``gfid``, ``precision`` and ``recall`` in [0, 1] (k = 3), the Inception Score with ``inception_weights``, and
    ``class_accuracy`` in [0, 1] with a ``judge`` folder (``semtok train judge``). ``fid`` must stay True.
    A text model: one sample per image of ``split`` prompted with its first caption, FID_T2I (``gfid``), on
    ``mnist5k-captioned`` the prompt scores (``prompt_scores``; ``prompt_{digit,colour,size,all}_{seen,held_out}`` in
    [0, 1], the digit with a captioned-data ``judge``), and ``clip_score`` in [0, 100] with ``clip_weights`` (an
    open_clip weights file of ``clip_model``).

    ``data``: "mnist5k" or an image folder (default: the data set the run was trained on, else "mnist5k");
    ``limit``: only an evenly spaced subset of that many images of the split. ``batch_size`` (default 128, as
    ``semtok evaluate``) also fixes the sampling seeds, so equal settings give the CLI's numbers.
    """
    if split not in ("train", "val"):
        raise SemtokError(f"split: expected 'train' or 'val', got {split!r}")
    kind = _generator_kind(path)
    if kind is not None:
        from semtok.evaluation.generation import evaluate_generation

        if not fid:
            raise SemtokError("fid=False: generation metrics are all in the Inception feature space")
        if lpips_weights is not None:
            raise SemtokError("lpips_weights applies to a tokenizer, not to a proposal network's samples")
        sampling = _sampling(
            kind,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            cfg_scale=cfg_scale,
            steps=steps,
            schedule=schedule,
            choice_temperature=choice_temperature,
            cfg_ramp=cfg_ramp,
        )
        return evaluate_generation(
            path,
            data,
            split,
            sampling,
            seed,
            judge,
            inception_weights,
            batch_size,
            progress=progress,
            limit=limit,
            clip_weights=clip_weights,
            clip_model=clip_model,
        )
    if clip_weights is not None:
        raise SemtokError("clip_weights applies to a text model's samples, not to a tokenizer")
    from semtok.config import run_dataset
    from semtok.evaluation.tokenizer import evaluate_tokenizer

    if judge is not None:
        raise SemtokError(
            f"judge '{judge}': a judge scores a proposal network's samples, but '{path}' holds no AR or masked model"
        )
    return evaluate_tokenizer(
        path,
        data or run_dataset(path),
        split,
        batch_size,
        progress=progress,
        fid=fid,
        inception_weights=inception_weights,
        lpips_weights=lpips_weights,
        limit=limit,
    )


def probe(
    path: str | Path,
    data: str | None = None,
    *,
    batch_size: int = 128,
    max_iter: int = 500,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Linear-probe top-1 (``val_top1`` in [0, 1]) of a tokenizer's frozen, mean-pooled code vectors: fit on the
    train split of ``data`` (a labelled data set; default: the run's own, else "mnist5k"), scored on val."""
    from semtok.config import run_dataset
    from semtok.evaluation.probe import linear_probe

    return linear_probe(path, data or run_dataset(path), batch_size, max_iter, seed, progress=progress)


def load_tokens(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A token file (``NAME``, ``NAME.json`` or ``NAME.npy``): ids ``[N, h, w]`` (a read-only memory map, uint16 or
    int32, values in ``[0, manifest["num_codes"])``), labels ``[N]`` int64 (-1 = unlabelled) and the manifest.

    Shapes, dtypes and sizes are checked against the manifest first (a one-line :class:`SemtokError` otherwise).
    """
    from semtok.data.token_file import read_token_file

    return read_token_file(path)


def train(
    stage: str,
    config: Any = None,
    out_dir: str | Path = "runs/run",
    overrides: Sequence[str] = (),
    resume: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
) -> dict[str, Any]:
    """Train stage ``stage`` (``vqkd``, ``cluster``, ``vqgan``, ``cvq``, ``fsq``, ``decoder``, ``judge``, ``ar``,
    ``nar``) into ``out_dir``, as ``semtok train STAGE`` does.

    ``config``: a run-config object, a named config / YAML path (default: the stage's default config), with
    ``overrides`` (``"section.key=value"`` strings) applied to a named or YAML one. Returns the run summary
    (also ``OUT/summary.json``); with ``stop_at`` the run checkpoints and stops there (continue with
    ``resume=True``; ``resume`` on a folder with no checkpoint yet starts at step 0).
    """
    from semtok.config import load_config
    from semtok.training import train as run
    from semtok.training.registry import config_class, stage_spec

    if config is None or isinstance(config, str | Path):
        source = str(config) if config is not None else stage_spec(stage).default_config
        config = load_config(
            config_class(stage), source, list(overrides), ignore=("kind", "perceptual_loss_used")
        )
    elif overrides:
        raise SemtokError("train: overrides apply to a named or YAML config, not to a config object")
    return run(stage, config, out_dir, resume, progress, stop_at)
