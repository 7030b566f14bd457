"""The AR stage: a class- or text-conditional proposal network trained on a token file (next-token cross-entropy).

A text model (``model.text_encoder`` set, `semtok train ar --text-encoder NAME`) reads the token file's captions
(:mod:`semtok.training.captions`); ``model.text_dim`` comes from the encoder and ``model.text_len`` (0: the encoder's
limit, at most 120 as LlamaGen) is the prefix length.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from semtok.data.token_file import TokenDataset
from semtok.errors import SemtokError
from semtok.generators.ar import ARConfig, ARTransformer
from semtok.losses.next_token import next_token_loss
from semtok.training.captions import CaptionCondition
from semtok.training.config import TrainConfig
from semtok.training.engine import Engine, Setup, Stage
from semtok.training.optim import build_optimizer


@dataclass
class ARDataConfig:
    """Token files written by ``semtok tokenize`` (the ``.json`` manifest or the ``.npy`` path)."""

    tokens: str = ""  # train tokens (required; `--tokens`)
    val_tokens: str = ""  # optional: val negative log-likelihood at the end of training
    num_workers: int = 0


@dataclass
class ARRunConfig:
    model: ARConfig = field(default_factory=ARConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: ARDataConfig = field(default_factory=ARDataConfig)


def filled_from_tokens(model: ARConfig, manifest: dict[str, Any], path: str) -> ARConfig:
    """``model`` with vocab_size / seq_len / grid / num_classes from a token manifest (values already set must
    agree with it); the given config is not changed."""
    grid = tuple(int(v) for v in manifest["grid"])
    found = {
        "vocab_size": int(manifest["num_codes"]),
        "seq_len": grid[0] * grid[1],
        "num_classes": int(manifest.get("num_classes") or 0),
    }
    for key, value in found.items():
        current = getattr(model, key)
        if current not in (0, value):
            raise SemtokError(f"config key 'model.{key}' is {current} but token file '{path}' has {value}")
    if tuple(model.grid) not in ((0, 0), grid):
        raise SemtokError(
            f"config key 'model.grid' is {list(model.grid)} but token file '{path}' has {list(grid)}"
        )
    return dataclasses.replace(model, **found, grid=grid)


def drop_labels(labels_B: torch.Tensor, null_class: int, p: float) -> torch.Tensor:
    """Labels with each replaced by the null class with probability ``p`` (global torch RNG, so resumable)."""
    if p <= 0:
        return labels_B
    drop = torch.rand(labels_B.shape, device=labels_B.device) < p
    return torch.where(drop, torch.full_like(labels_B, null_class), labels_B)


def token_batches(dataset: TokenDataset, batch_size: int, device: torch.device):  # noqa: ANN201 (a generator)
    """The data set in order as (ids [b, N] int64, labels [b] int64 on ``device``, rows [b] int64) batches."""
    for start in range(0, len(dataset), batch_size):
        rows = range(start, min(len(dataset), start + batch_size))
        items = [dataset[i] for i in rows]
        yield (
            torch.stack([ids for ids, _ in items]).to(device),
            torch.tensor([label for _, label in items], device=device),
            torch.tensor(list(rows)),
        )


def condition_of(
    labels_B: torch.Tensor, rows_B: torch.Tensor, captions: CaptionCondition | None, device: torch.device
) -> dict[str, Any]:
    """The model's condition keywords for a val batch: the labels, or each row's first caption."""
    if captions is None:
        return {"labels_B": labels_B}
    return captions.condition(rows_B, device, pick=False)


@torch.no_grad()
def token_nll(
    model: ARTransformer,
    dataset: TokenDataset,
    batch_size: int,
    device: torch.device,
    captions: CaptionCondition | None = None,
) -> float:
    """Mean negative log-likelihood (nats per token) of a token data set under the (conditional) model; a text
    model is given each row's first caption (``captions`` of ``dataset``)."""
    total, count = 0.0, 0
    model.eval()
    for ids, labels, rows in token_batches(dataset, batch_size, device):
        loss = next_token_loss(model(ids, **condition_of(labels, rows, captions, device)), ids)
        total += float(loss) * ids.numel()
        count += ids.numel()
    return total / max(count, 1)


def open_tokens(path: str, what: str, like: tuple[TokenDataset, str] | None = None) -> TokenDataset:
    """The token file at config key ``what``; ``like`` (train set, its path): it must come from the same
    tokenizer (codebook size and grid)."""
    if not path:
        raise SemtokError(f"config key '{what}': no token file given (one written by `semtok tokenize`)")
    dataset = TokenDataset(path)
    if like is not None:
        reference, reference_path = like
        ours, theirs = dataset.manifest, reference.manifest
        if ours["num_codes"] != theirs["num_codes"] or list(ours["grid"]) != list(theirs["grid"]):
            raise SemtokError(f"token file '{path}' was made by another tokenizer than '{reference_path}'")
    return dataset


class ARStage(Stage):
    """Trains a proposal network on a token file. The masked stage (:mod:`semtok.training.nar`) is this one with
    another ``model_class``, ``step`` and ``val_fields``."""

    config_class = ARRunConfig
    folder = "ar"
    model_class: ClassVar[type] = ARTransformer
    train_loss_key: ClassVar[str] = "loss/train_nll"

    def setup(self, engine: Engine) -> Setup:
        data = self.config.data
        self.train_set = open_tokens(data.tokens, "data.tokens")
        model = filled_from_tokens(self.config.model, self.train_set.manifest, data.tokens)
        self.config = dataclasses.replace(self.config, model=model)
        self.train_set.null_label = model.null_class
        self.captions = self.val_captions = None
        if model.text_encoder:
            self.captions = self.open_captions(data.tokens, engine)
            model = dataclasses.replace(model, text_dim=self.captions.dim, text_len=self.captions.text_len)
            self.config = dataclasses.replace(self.config, model=model)
        self.val_set = None
        if data.val_tokens:
            self.val_set = open_tokens(data.val_tokens, "data.val_tokens", like=(self.train_set, data.tokens))
            self.val_set.null_label = model.null_class
            if self.captions is not None:
                self.val_captions = self.open_captions(data.val_tokens, engine)
        self.model = self.model_class(model)
        return Setup(
            train_set=self.train_set,
            modules={"model": self.model},
            optimizers={"model": build_optimizer(self.model, self.config.train)},
            progress=(self.train_loss_key,),
        )

    def open_captions(self, path: str, engine: Engine) -> CaptionCondition:
        """The captions of a token file with their text states: encoded by the main process (written beside the
        token file), then read by the others. The val set's reuses the train set's encoder."""
        model = self.config.model
        built = None if self.captions is None else self.captions.encoder
        with engine.accelerator.main_process_first():
            return CaptionCondition(
                path,
                model.text_encoder,
                model.text_encoder_weights,
                model.text_len,
                engine.show_progress,
                built,
            )

    def train_condition(self, batch: tuple[torch.Tensor, ...], engine: Engine) -> dict[str, Any]:
        """The model's condition keywords of a train batch: labels dropped to the null class, or a random caption
        of each row dropped to the null prefix, each with probability ``model.class_dropout``."""
        model = self.config.model
        if self.captions is not None:
            return self.captions.condition(batch[2], engine.device, model.class_dropout)
        labels = batch[1].to(engine.device)
        return {"labels_B": drop_labels(labels, model.null_class, model.class_dropout)}

    def step(self, batch: tuple[torch.Tensor, ...], engine: Engine) -> dict[str, Any]:
        ids = batch[0].to(engine.device)
        condition = self.train_condition(batch, engine)
        with engine.accelerator.autocast():
            logits = engine.modules["model"](ids, **condition)
        loss = next_token_loss(logits.float(), ids)
        engine.optimize("model", loss)
        return {"loss/train_nll": loss.detach()}

    def val_fields(self, engine: Engine) -> dict[str, Any]:
        """Summary fields of the val token set (logged too)."""
        nll = token_nll(
            self.model, self.val_set, self.config.train.batch_size, engine.device, self.val_captions
        )
        engine.log(engine.step_index, {"loss/val_nll": nll})
        return {"val_nll": nll, "val_perplexity": math.exp(nll)}

    def finish(self, engine: Engine) -> tuple[nn.Module, dict[str, Any]]:
        fields: dict[str, Any] = {"parameters": self.model.num_parameters()}
        if self.val_set is not None:
            fields.update(self.val_fields(engine))
        manifest = self.train_set.manifest
        self.model.info = {
            "tokenizer": manifest["tokenizer"]["path"],
            "tokenizer_kind": manifest["tokenizer"]["kind"],
            "tokens": str(Path(self.config.data.tokens).resolve()),
            "data": manifest.get("data", {}),
            "class_names": manifest.get("class_names", []),
        }
        if self.captions is not None:
            self.model.info["text_states"] = str(self.captions.states.path.resolve())
        return self.model, {**fields, "tokenizer": self.model.info["tokenizer"]}

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        val = f", val NLL {summary['val_nll']:.4f}" if "val_nll" in summary else ""
        return [f"AR model: {summary['ar']} ({summary['parameters']:,} parameters{val})"]
