"""Train a VQ-KD tokenizer: one Accelerate loop, exact resume, TensorBoard, a progress bar."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from semtok.config import to_dict
from semtok.data import build_dataset
from semtok.errors import SemtokError
from semtok.losses.distillation import cosine_distillation_loss
from semtok.metrics.codebook import code_histogram, codebook_stats
from semtok.teachers.base import Teacher, teacher_targets
from semtok.tokenizers.vqkd import VQKDConfig, VQKDTokenizer, build_vqkd_teacher
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


@dataclass
class VQKDRunConfig:
    """Everything a VQ-KD run needs; the YAML file has these three sections."""

    model: VQKDConfig = field(default_factory=VQKDConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)


@torch.no_grad()
def cache_targets(
    teacher: Teacher,
    dataset: Any,
    grid_hw: tuple[int, int],
    batch_size: int,
    device: torch.device,
    show: bool,
) -> torch.Tensor:
    """Teacher targets of every item, in index order: [N, C, h, w] float32 on the CPU."""
    chunks = []
    for start in tqdm(
        range(0, len(dataset), batch_size), desc="teacher cache", disable=not show, leave=False
    ):
        images = torch.stack([dataset[i][0] for i in range(start, min(len(dataset), start + batch_size))])
        chunks.append(teacher_targets(teacher, images.to(device), grid_hw).cpu())
    return torch.cat(chunks)


def train_vqkd(
    config: VQKDRunConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
) -> dict:
    """Train (or resume) a VQ-KD tokenizer into ``out_dir``; returns the run summary.

    ``stop_at``: checkpoint and stop after this step (for time-limited jobs); continue later with ``resume``.

    ``out_dir`` gets: ``config.yaml`` (the resolved config), ``checkpoints/``, ``tb/`` (TensorBoard),
    ``log.jsonl``, ``tokenizer/`` (``Tokenizer.from_pretrained`` folder) and ``summary.json``.
    """
    out_dir = Path(out_dir)
    train, data = config.train, config.data
    accelerator = make_accelerator(train)
    main = accelerator.is_main_process
    world = accelerator.num_processes
    if train.batch_size % world:
        raise SemtokError(f"train.batch_size {train.batch_size} is not divisible by the {world} processes")

    started = time.time()
    teacher = build_vqkd_teacher(config.model).to(accelerator.device)
    model_config = config.model
    if model_config.teacher_dim not in (0, teacher.feature_dim):
        raise SemtokError(
            f"model.teacher_dim is {model_config.teacher_dim} but teacher '{model_config.teacher}' "
            f"gives {teacher.feature_dim}-d features"
        )
    model_config.teacher_dim = teacher.feature_dim
    train_set = build_dataset(
        data.dataset,
        "train",
        model_config.image_size,
        augment=data.augment,
        crop_scale=data.crop_scale,
        seed=train.seed,
    )
    model = VQKDTokenizer(model_config)
    grid_hw = model.grid_size

    existing = open_run_dir(out_dir, resume, main, {"kind": "vqkd", **to_dict(config)})

    optimizer = adamw(model, train)
    start_step = 0
    if existing is not None:
        start_step = load_checkpoint(existing, {"model": model}, {"model": optimizer}, kind="vqkd")["step"]
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped: VQKDTokenizer = accelerator.unwrap_model(model)

    augmented = data.augment != "none"
    cache = None
    if train.cache_teacher and not augmented:
        size_gb = len(train_set) * teacher.feature_dim * grid_hw[0] * grid_hw[1] * 4 / 1e9
        if size_gb <= train.max_cache_gb:
            cache = cache_targets(
                teacher, train_set, grid_hw, 256, accelerator.device, show=main and progress
            )
    cache_note = (
        "cached (no random augmentation)"
        if cache is not None
        else (
            "computed every step (random augmentation)"
            if augmented
            else "computed every step (cache off or too large)"
        )
    )

    log = RunLog(out_dir, enabled=main)
    per_process = train.batch_size // world
    stream = batch_stream(
        train_set,
        train.batch_size,
        train.seed,
        start_step,
        accelerator.process_index,
        world,
        data.num_workers,
    )
    window_counts = torch.zeros(model_config.num_codes, dtype=torch.long)
    bar = tqdm(
        total=train.steps,
        initial=start_step,
        desc="vqkd",
        disable=not (main and progress),
        dynamic_ncols=True,
    )
    model.train()
    step = start_step
    loss_value = float("nan")
    last_step = min(train.steps, stop_at) if stop_at else train.steps
    while step < last_step:
        images, _, indices = next(stream)
        images = images.to(accelerator.device, non_blocking=True)
        if cache is not None:
            targets = cache[indices].to(accelerator.device)
        else:
            targets = teacher_targets(teacher, images, grid_hw)
        lr = warmup_cosine_lr(step, train.lr, train.warmup_steps, train.steps, train.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with accelerator.autocast():
            decoded, ids, aux = model(images)
        distill = cosine_distillation_loss(decoded, targets)
        loss = distill + aux["loss"]
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
        window_counts += code_histogram(ids.detach(), model_config.num_codes)
        loss_value = loss.item()
        if step % train.log_every == 0 or step == train.steps:
            stats = codebook_stats(window_counts)
            window_counts.zero_()
            log.scalars(
                step,
                {
                    "loss/total": loss_value,
                    "loss/distill": distill.item(),
                    "loss/commit": float(aux["commit_loss"]),
                    "codebook/usage_window": stats["usage"],
                    "codebook/perplexity_window": stats["perplexity"],
                    "lr": lr,
                },
            )
            bar.set_postfix(
                loss=f"{loss_value:.4f}", cos=f"{1 - distill.item():.3f}", usage=f"{stats['usage']:.2f}"
            )
        bar.update(1)
        checkpoint_if_due(
            accelerator,
            out_dir,
            step,
            last_step,
            train,
            {"model": unwrapped},
            {"model": optimizer},
            {"kind": "vqkd", "per_process_batch": per_process, "world_size": world},
        )
    bar.close()
    log.close()
    accelerator.wait_for_everyone()

    summary: dict[str, Any] = {}
    if main and step < train.steps:
        summary = {"kind": "vqkd", "stopped_at_step": step, "steps": train.steps, "tokenizer": None}
    elif main:
        summary = finish_run(
            out_dir,
            "vqkd",
            unwrapped,
            train,
            start_step if resume else None,
            started,
            train_set,
            accelerator,
            final_loss=loss_value,
            teacher=model_config.teacher,
            teacher_features=cache_note,
        )
    return summary
