"""Train a class-conditional AR proposal network on a token file: the same Accelerate loop as the tokenizers
(checkpoints, exact resume, TensorBoard + log.jsonl, a progress bar)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from semtok.config import to_dict
from semtok.data.token_file import TokenDataset
from semtok.errors import SemtokError
from semtok.generators.ar import ARConfig, ARTransformer
from semtok.losses.next_token import next_token_loss
from semtok.training.checkpoint import load_checkpoint
from semtok.training.config import TrainConfig
from semtok.training.loop import (
    RunLog,
    adamw,
    batch_stream,
    checkpoint_if_due,
    finish_run,
    make_accelerator,
    open_run_dir,
)
from semtok.training.schedule import warmup_cosine_lr


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


def fill_from_tokens(model: ARConfig, manifest: dict[str, Any], path: str) -> None:
    """Set vocab_size / seq_len / grid / num_classes from a token manifest; set values must agree with it."""
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
        setattr(model, key, value)
    if tuple(model.grid) not in ((0, 0), grid):
        raise SemtokError(
            f"config key 'model.grid' is {list(model.grid)} but token file '{path}' has {list(grid)}"
        )
    model.grid = grid


def drop_labels(labels_B: torch.Tensor, null_class: int, p: float) -> torch.Tensor:
    """Labels with each replaced by the null class with probability ``p`` (global torch RNG, so resumable)."""
    if p <= 0:
        return labels_B
    drop = torch.rand(labels_B.shape, device=labels_B.device) < p
    return torch.where(drop, torch.full_like(labels_B, null_class), labels_B)


@torch.no_grad()
def token_nll(model: ARTransformer, dataset: TokenDataset, batch_size: int, device: torch.device) -> float:
    """Mean negative log-likelihood (nats per token) of a token data set under the (conditional) model."""
    total, count = 0.0, 0
    model.eval()
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(len(dataset), start + batch_size))]
        ids = torch.stack([ids for ids, _ in items]).to(device)
        labels = torch.tensor([label for _, label in items], device=device)
        loss = next_token_loss(model(ids, labels), ids)
        total += float(loss) * ids.numel()
        count += ids.numel()
    return total / max(count, 1)


def _open_tokens(path: str, what: str) -> TokenDataset:
    if not path:
        raise SemtokError(f"{what}: no token file given (pass --tokens FILE, written by `semtok tokenize`)")
    return TokenDataset(path)


def train_ar(
    config: ARRunConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
) -> dict:
    """Train (or resume) an AR model on ``config.data.tokens`` into ``out_dir``; returns the run summary.

    ``out_dir`` gets ``config.yaml``, ``checkpoints/``, ``tb/``, ``log.jsonl``, ``ar/`` (the model folder, which
    records the tokenizer that decodes its tokens) and ``summary.json``.
    """
    out_dir = Path(out_dir)
    train, data, model_config = config.train, config.data, config.model
    accelerator = make_accelerator(train)
    main = accelerator.is_main_process
    world = accelerator.num_processes
    if train.batch_size % world:
        raise SemtokError(f"train.batch_size {train.batch_size} is not divisible by the {world} processes")
    started = time.time()

    train_set = _open_tokens(data.tokens, "data.tokens")
    fill_from_tokens(model_config, train_set.manifest, data.tokens)
    train_set.null_label = model_config.null_class
    val_set = None
    if data.val_tokens:
        val_set = _open_tokens(data.val_tokens, "data.val_tokens")
        if val_set.manifest["num_codes"] != model_config.vocab_size or list(val_set.manifest["grid"]) != list(
            model_config.grid
        ):
            raise SemtokError(
                f"val token file '{data.val_tokens}' was made by another tokenizer than '{data.tokens}'"
            )
        val_set.null_label = model_config.null_class

    model = ARTransformer(model_config)
    existing = open_run_dir(out_dir, resume, main, {"kind": "ar", **to_dict(config)})
    optimizer = adamw(model, train)
    start_step = 0
    if existing is not None:
        start_step = load_checkpoint(existing, {"model": model}, {"model": optimizer}, kind="ar")["step"]
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped: ARTransformer = accelerator.unwrap_model(model)

    log = RunLog(out_dir, enabled=main)
    stream = batch_stream(
        train_set,
        train.batch_size,
        train.seed,
        start_step,
        accelerator.process_index,
        world,
        data.num_workers,
    )
    bar = tqdm(
        total=train.steps, initial=start_step, desc="ar", disable=not (main and progress), dynamic_ncols=True
    )
    model.train()
    step = start_step
    loss_value = float("nan")
    last_step = min(train.steps, stop_at) if stop_at else train.steps
    while step < last_step:
        ids, labels, _ = next(stream)
        ids, labels = ids.to(accelerator.device), labels.to(accelerator.device)
        labels = drop_labels(labels, model_config.null_class, model_config.class_dropout)
        lr = warmup_cosine_lr(step, train.lr, train.warmup_steps, train.steps, train.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with accelerator.autocast():
            logits = model(ids, labels)
        loss = next_token_loss(logits.float(), ids)
        if not torch.isfinite(loss):
            raise SemtokError(
                f"loss became {loss.item()} at step {step}: lower train.lr or use mixed_precision=no"
            )
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if train.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        step += 1
        loss_value = loss.item()
        if step % train.log_every == 0 or step == train.steps:
            log.scalars(step, {"loss/train_nll": loss_value, "lr": lr})
            bar.set_postfix(loss=f"{loss_value:.3f}", ppl=f"{math.exp(loss_value):.1f}")
        bar.update(1)
        checkpoint_if_due(
            accelerator,
            out_dir,
            step,
            last_step,
            train,
            {"model": unwrapped},
            {"model": optimizer},
            {"kind": "ar", "per_process_batch": train.batch_size // world, "world_size": world},
        )
    bar.close()
    accelerator.wait_for_everyone()

    summary: dict[str, Any] = {}
    if main and step < train.steps:
        summary = {"kind": "ar", "stopped_at_step": step, "steps": train.steps, "ar": None}
    elif main:
        fields: dict[str, Any] = {"final_train_nll": loss_value, "parameters": unwrapped.num_parameters()}
        if val_set is not None:
            fields["val_nll"] = token_nll(unwrapped, val_set, train.batch_size, accelerator.device)
            fields["val_perplexity"] = math.exp(fields["val_nll"])
            log.scalars(step, {"loss/val_nll": fields["val_nll"]})
        provenance = {
            "tokenizer": train_set.manifest["tokenizer"]["path"],
            "tokenizer_kind": train_set.manifest["tokenizer"]["kind"],
            "tokens": str(Path(data.tokens).resolve()),
            "data": train_set.manifest.get("data", {}),
            "class_names": train_set.manifest.get("class_names", []),
        }
        summary = finish_run(
            out_dir,
            "ar",
            unwrapped,
            train,
            start_step if resume else None,
            started,
            train_set,
            accelerator,
            folder="ar",
            save_kwargs={"extra": provenance},
            **fields,
            tokenizer=provenance["tokenizer"],
        )
    log.close()
    return summary
