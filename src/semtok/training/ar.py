"""The AR stage: a class-conditional proposal network trained on a token file (next-token cross-entropy)."""

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
    """The data set in order as (ids [b, N] int64, labels [b] int64) batches on ``device``."""
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(len(dataset), start + batch_size))]
        yield (
            torch.stack([ids for ids, _ in items]).to(device),
            torch.tensor([label for _, label in items], device=device),
        )


@torch.no_grad()
def token_nll(model: ARTransformer, dataset: TokenDataset, batch_size: int, device: torch.device) -> float:
    """Mean negative log-likelihood (nats per token) of a token data set under the (conditional) model."""
    total, count = 0.0, 0
    model.eval()
    for ids, labels in token_batches(dataset, batch_size, device):
        loss = next_token_loss(model(ids, labels), ids)
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
        self.val_set = None
        if data.val_tokens:
            self.val_set = open_tokens(data.val_tokens, "data.val_tokens", like=(self.train_set, data.tokens))
            self.val_set.null_label = model.null_class
        self.model = self.model_class(model)
        return Setup(
            train_set=self.train_set,
            modules={"model": self.model},
            optimizers={"model": build_optimizer(self.model, self.config.train)},
            progress=(self.train_loss_key,),
        )

    def step(self, batch: tuple[torch.Tensor, ...], engine: Engine) -> dict[str, Any]:
        ids, labels = batch[0].to(engine.device), batch[1].to(engine.device)
        model = self.config.model
        labels = drop_labels(labels, model.null_class, model.class_dropout)
        with engine.accelerator.autocast():
            logits = engine.modules["model"](ids, labels)
        loss = next_token_loss(logits.float(), ids)
        engine.optimize("model", loss)
        return {"loss/train_nll": loss.detach()}

    def val_fields(self, engine: Engine) -> dict[str, Any]:
        """Summary fields of the val token set (logged too)."""
        nll = token_nll(self.model, self.val_set, self.config.train.batch_size, engine.device)
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
        return self.model, {**fields, "tokenizer": self.model.info["tokenizer"]}

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        val = f", val NLL {summary['val_nll']:.4f}" if "val_nll" in summary else ""
        return [f"AR model: {summary['ar']} ({summary['parameters']:,} parameters{val})"]
