"""Pieces every training stage shares: the Accelerator, a resumable batch order, logging, the optimizer."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from torch import nn

from semtok.training.config import TrainConfig


def make_accelerator(train: TrainConfig) -> Accelerator:
    """One process on CPU by default; under `accelerate launch` / `torchrun` it picks up the process group."""
    accelerator = Accelerator(mixed_precision=train.mixed_precision, cpu=not torch.cuda.is_available())
    set_seed(train.seed, device_specific=False)
    return accelerator


def epoch_batches(
    num_items: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1
) -> list[list[int]]:
    """This process's batches of dataset indices for one epoch: a permutation seeded by (seed, epoch).

    ``batch_size`` is the global batch; each process takes its own ``batch_size // world_size`` slice of every
    global batch. The last incomplete global batch is dropped, so every step sees a full batch.
    The order depends only on (seed, epoch), never on RNG state, so a resumed run replays it exactly.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(num_items, generator=generator).tolist()
    per_process = batch_size // world_size
    batches = []
    for start in range(0, num_items - batch_size + 1, batch_size):
        global_batch = order[start : start + batch_size]
        batches.append(global_batch[rank * per_process : (rank + 1) * per_process])
    return batches


def batch_stream(
    dataset: Any,
    batch_size: int,
    seed: int,
    start_step: int,
    rank: int,
    world_size: int,
    num_workers: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless (images, labels, indices) batches from ``start_step`` on, epoch after epoch.

    Datasets with ``set_epoch`` get it called, so random augmentation is a function of (seed, epoch, index).
    """
    steps_per_epoch = len(epoch_batches(len(dataset), batch_size, seed, 0, rank, world_size))
    if steps_per_epoch == 0:
        from semtok.errors import SemtokError

        raise SemtokError(f"the data set has {len(dataset)} images, fewer than one batch of {batch_size}")
    epoch, skip = divmod(start_step, steps_per_epoch)
    while True:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        batches = epoch_batches(len(dataset), batch_size, seed, epoch, rank, world_size)[skip:]
        # Its own generator: a DataLoader otherwise draws worker seeds from the global RNG, which would shift the
        # RNG stream of a resumed run (k-means, code restarts) against a straight one.
        loader = torch.utils.data.DataLoader(
            _Indexed(dataset),
            batch_sampler=batches,
            num_workers=num_workers,
            persistent_workers=False,
            generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch),
        )
        yield from loader
        epoch, skip = epoch + 1, 0


class _Indexed(torch.utils.data.Dataset):
    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        image, label = self.dataset[index]
        return image, label, index


def open_run_dir(out_dir: Path, resume: bool, write: bool, saved_config: dict[str, Any]) -> Path | None:
    """Check ``out_dir`` against ``resume`` and record the run's config; returns the checkpoint to resume from.

    A folder that already holds a run needs ``resume``; ``resume`` needs a checkpoint. The main process
    (``write``) writes ``config.yaml``, which ``--resume`` reads back.
    """
    from semtok.errors import SemtokError
    from semtok.training.checkpoint import latest_checkpoint

    existing = latest_checkpoint(out_dir)
    if existing is not None and not resume:
        raise SemtokError(
            f"'{out_dir}' already holds a run (checkpoint {existing.name}): pass --resume or another --out"
        )
    if resume and existing is None:
        raise SemtokError(f"--resume: '{out_dir}' holds no checkpoint to resume from")
    if write:
        import yaml

        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(saved_config, sort_keys=False))
    return existing


def finish_run(
    out_dir: Path,
    kind: str,
    model: nn.Module,
    train: TrainConfig,
    resumed_from: int | None,
    started: float,
    train_set: Any,
    accelerator: Accelerator,
    folder: str = "tokenizer",
    save_kwargs: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Save the final model to ``OUT/<folder>`` and write ``OUT/summary.json``; returns the summary.

    Every stage records the same facts (steps, time, data, processes, device, where the model is) plus its own
    ``fields`` (losses, teacher, perceptual loss, ...). ``model.save_pretrained(folder, **save_kwargs)`` writes
    the folder.
    """
    model.eval().save_pretrained(out_dir / folder, **(save_kwargs or {}))
    summary = {
        "kind": kind,
        "steps": train.steps,
        "resumed_from_step": resumed_from,
        "train_seconds_this_session": round(time.time() - started, 1),
        **fields,
        "train_images": len(train_set),
        "skipped_files": len(getattr(train_set, "skipped_files", [])),
        "processes": accelerator.num_processes,
        "device": str(accelerator.device),
        folder: str(out_dir / folder),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def checkpoint_if_due(
    accelerator: Accelerator,
    out_dir: Path,
    step: int,
    last_step: int,
    train: TrainConfig,
    modules: dict[str, nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    info: dict[str, Any],
) -> None:
    """Every ``train.checkpoint_every`` steps and at ``last_step``: all processes meet, the main one writes the
    checkpoint of the (unwrapped) ``modules`` and ``optimizers`` with ``info`` (``kind`` is checked on resume)."""
    if step % train.checkpoint_every and step != last_step:
        return
    from semtok.training.checkpoint import save_checkpoint

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_checkpoint(out_dir, step, modules, optimizers, info, keep=train.keep_checkpoints)


def adamw(model: nn.Module, train: TrainConfig) -> torch.optim.AdamW:
    """AdamW with no weight decay on biases, norms, position embeddings (1-D or named *pos_embed*)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        (no_decay if parameter.ndim <= 1 or "pos_embed" in name else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": train.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=train.lr, betas=tuple(train.betas))


class RunLog:
    """Scalars to TensorBoard (``OUT/tb``) and to ``OUT/log.jsonl``; only the main process writes."""

    def __init__(self, out_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.writer = None
        self.started = time.time()
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(Path(out_dir) / "tb"))
            self.jsonl = open(Path(out_dir) / "log.jsonl", "a")  # noqa: SIM115 - closed in close()

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        self.jsonl.write(json.dumps({"step": step, **values}) + "\n")
        self.jsonl.flush()

    def close(self) -> None:
        if self.enabled:
            self.writer.close()
            self.jsonl.close()
