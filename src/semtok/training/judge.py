"""Train the judge: a small ResNet-style classifier of the data set's classes (``semtok train judge``).

Cross-entropy on the train split (light augmentation: for digits a small random crop and no flip), AdamW with
warm-up + cosine, the same resumable batch order, checkpoints (kind ``judge``), TensorBoard and ``log.jsonl`` as
the other stages. At the end the judge's top-1 accuracy on the val split is measured and the judge is written to
``OUT/judge/`` (``config.json`` with the accuracy in its ``info``, ``model.safetensors``) and the run's facts to
``OUT/summary.json``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from semtok.config import to_dict
from semtok.data import build_dataset
from semtok.errors import SemtokError
from semtok.evaluation.common import iterate_batches
from semtok.evaluation.judge import Judge, JudgeConfig
from semtok.training.checkpoint import load_checkpoint
from semtok.training.config import DataConfig, TrainConfig
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

KIND = "judge"


@dataclass
class JudgeLossConfig:
    """Cross-entropy with optional label smoothing."""

    label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            raise SemtokError(
                f"config key 'loss.label_smoothing': expected 0 <= value < 1, got {self.label_smoothing}"
            )


@dataclass
class JudgeRunConfig:
    """Everything ``semtok train judge`` needs; the YAML file has these four sections."""

    model: JudgeConfig = field(default_factory=JudgeConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=5e-3, weight_decay=0.01))
    data: DataConfig = field(default_factory=DataConfig)
    loss: JudgeLossConfig = field(default_factory=JudgeLossConfig)


def _checked_classes(train_set: Any, model: JudgeConfig, dataset: str) -> list[str]:
    """The data set's class names; it must be labelled with exactly ``model.num_classes`` classes."""
    names = list(getattr(train_set, "class_names", []))
    labelled = getattr(train_set, "labelled", True) and getattr(train_set, "num_classes", len(names)) > 0
    if not labelled:
        raise SemtokError(
            f"data.dataset '{dataset}': a judge needs labelled images (class subfolders); this data set has none"
        )
    if len(names) != model.num_classes:
        raise SemtokError(
            f"config key 'model.num_classes': {model.num_classes}, but data set '{dataset}' has "
            f"{len(names)} classes; set --set model.num_classes={len(names)}"
        )
    return names


@torch.no_grad()
def evaluate_judge(
    judge: Judge, dataset: Any, batch_size: int = 256, progress: bool = False
) -> dict[str, Any]:
    """Top-1 accuracy (float in [0, 1]), per-class accuracy and image count of ``judge`` on a labelled data set."""
    correct = torch.zeros(judge.num_classes, dtype=torch.long)
    total = torch.zeros(judge.num_classes, dtype=torch.long)
    for images, labels in iterate_batches(dataset, batch_size, progress, "judge val"):
        predictions = judge.classify(images, batch_size=batch_size).argmax(dim=1)
        total += torch.bincount(labels, minlength=judge.num_classes)
        correct += torch.bincount(labels[predictions == labels], minlength=judge.num_classes)
    if int(total.sum()) == 0:
        raise SemtokError("judge evaluation: the val split has no images")
    per_class = {
        name: round(float(c) / float(t), 4)
        for name, c, t in zip(judge.config.class_names or range(judge.num_classes), correct, total)
        if int(t) > 0
    }
    return {
        "top1": float(correct.sum()) / float(total.sum()),
        "images": int(total.sum()),
        "per_class_top1": per_class,
    }


def train_judge(
    config: JudgeRunConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
) -> dict[str, Any]:
    """Train a judge into ``out_dir``; returns the run summary (also written to ``OUT/summary.json``).

    Outputs: ``config.yaml``, ``checkpoints/``, ``tb/``, ``log.jsonl``, ``judge/`` and ``summary.json`` (with
    ``val_top1``, the judge's top-1 accuracy on the val split in [0, 1]). ``stop_at``: checkpoint and stop after
    that step (the summary is then ``{"kind", "stopped_at_step", "steps", "judge": None}``); continue with
    ``resume=True``.
    """
    out_dir = Path(out_dir)
    train, data = config.train, config.data
    accelerator = make_accelerator(train)
    main, world = accelerator.is_main_process, accelerator.num_processes
    if train.batch_size % world:
        raise SemtokError(f"train.batch_size {train.batch_size} is not divisible by the {world} processes")
    started = time.time()

    image_size = config.model.image_size
    train_set = build_dataset(
        data.dataset, "train", image_size, augment=data.augment, crop_scale=data.crop_scale, seed=train.seed
    )
    class_names = _checked_classes(train_set, config.model, data.dataset)
    model_config = replace(config.model, class_names=[str(name) for name in class_names])
    judge = Judge(model_config)

    existing = open_run_dir(out_dir, resume, main, {"kind": KIND, **to_dict(config)})
    optimizer = adamw(judge, train)
    start_step = 0
    if existing is not None:
        start_step = load_checkpoint(existing, {"model": judge}, {"model": optimizer}, kind=KIND)["step"]
    model, optimizer = accelerator.prepare(judge, optimizer)

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
    last_step = min(train.steps, stop_at) if stop_at else train.steps
    bar = tqdm(
        total=train.steps, initial=start_step, desc=KIND, disable=not (main and progress), dynamic_ncols=True
    )
    model.train()
    step, values = start_step, {}
    window_loss, window_correct, window_seen = 0.0, 0, 0
    while step < last_step:
        images, labels, _ = next(stream)
        images = images.to(accelerator.device, non_blocking=True)
        labels = labels.to(accelerator.device, non_blocking=True)
        if int(labels.min()) < 0 or int(labels.max()) >= judge.num_classes:
            raise SemtokError(
                f"data.dataset '{data.dataset}': label {int(labels.min())}..{int(labels.max())} outside "
                f"[0, {judge.num_classes}) at step {step}"
            )
        lr = warmup_cosine_lr(step, train.lr, train.warmup_steps, train.steps, train.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with accelerator.autocast():
            logits = model(images)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.loss.label_smoothing)
        if not torch.isfinite(loss):
            raise SemtokError(f"loss became {loss.item()} at step {step}: lower train.lr")
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if train.grad_clip > 0:
            accelerator.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()

        step += 1
        window_loss += loss.item() * labels.shape[0]
        window_correct += int((logits.detach().argmax(dim=1) == labels).sum())
        window_seen += labels.shape[0]
        if step % train.log_every == 0 or step == last_step:
            values = {
                "loss/cross_entropy": window_loss / window_seen,
                "train/top1_window": window_correct / window_seen,
                "lr": lr,
            }
            window_loss, window_correct, window_seen = 0.0, 0, 0
            log.scalars(step, values)
            bar.set_postfix(
                loss=f"{values['loss/cross_entropy']:.4f}", top1=f"{values['train/top1_window']:.3f}"
            )
        bar.update(1)
        checkpoint_if_due(
            accelerator,
            out_dir,
            step,
            last_step,
            train,
            {"model": judge},
            {"model": optimizer},
            {"kind": KIND, "world_size": world},
        )
    bar.close()
    accelerator.wait_for_everyone()

    summary: dict[str, Any] = {}
    if main and step < train.steps:
        log.close()
        summary = {"kind": KIND, "stopped_at_step": step, "steps": train.steps, "judge": None}
    elif main:
        judge.eval()
        val_set = build_dataset(data.dataset, "val", image_size, augment="none")
        val = evaluate_judge(judge, val_set, progress=progress)
        log.scalars(step, {"val/top1": val["top1"]})
        log.close()
        judge.info = {
            "val_top1": val["top1"],
            "val_images": val["images"],
            "data": data.dataset,
            "train_steps": train.steps,
        }
        summary = finish_run(
            out_dir,
            KIND,
            judge,
            train,
            start_step if resume else None,
            started,
            train_set,
            accelerator,
            folder="judge",
            val_top1=val["top1"],
            val_images=val["images"],
            val_per_class_top1=val["per_class_top1"],
            data=data.dataset,
            augment=data.augment,
            final_losses=values,
        )
    else:
        log.close()
    return summary
