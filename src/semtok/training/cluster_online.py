"""Learn a Cluster codebook online (the paper's recipe): frozen teacher, only the codebook trains.

Each step: teacher patch features of the batch, l2-normalised -> nearest code by cosine (codes = the
l2-normalised rows of a learned ``[K, C]`` parameter) -> codebook loss ``mse(code, sg[feature])`` (VQ-VAE's
codebook term; the encoder is frozen, so there is no commitment term) -> AdamW on the codebook. Codes that
no feature picked for ``codebook.reseed_steps`` consecutive steps are re-seeded from random features of the
batch. The codebook starts from k-means (``model.kmeans_iters`` iterations, cosine) on the first batch.
Under several processes the counts are all-reduced and re-seed vectors come from rank 0, so every process
keeps an identical codebook (its gradient is all-reduced by DDP).

Outputs as for the other stages: ``config.yaml``, ``checkpoints/``, ``tb/``, ``log.jsonl``, ``tokenizer/``,
``summary.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm.auto import tqdm

from semtok.config import to_dict
from semtok.data import build_dataset
from semtok.errors import SemtokError
from semtok.metrics.codebook import code_histogram, codebook_stats
from semtok.quantizers.online_codebook import OnlineCodebook
from semtok.tokenizers.cluster import ClusterConfig, ClusterTokenizer, build_cluster_teacher
from semtok.training.checkpoint import load_checkpoint
from semtok.training.config import DataConfig, TrainConfig
from semtok.training.loop import RunLog, batch_stream, checkpoint_if_due, make_accelerator, open_run_dir
from semtok.training.schedule import warmup_cosine_lr


@dataclass
class OnlineCodebookConfig:
    """Re-seeding of unused codes (the paper's Cluster recipe)."""

    reseed_steps: int = 100  # re-seed a code no feature picked for this many consecutive steps; 0: never

    def __post_init__(self) -> None:
        if self.reseed_steps < 0:
            raise SemtokError(
                f"config key 'codebook.reseed_steps': expected an int >= 0, got {self.reseed_steps}"
            )


@dataclass
class ClusterTrainRunConfig:
    """Everything ``semtok train cluster`` needs; the YAML file has these four sections."""

    model: ClusterConfig = field(default_factory=ClusterConfig)
    codebook: OnlineCodebookConfig = field(default_factory=OnlineCodebookConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(weight_decay=0.0))
    data: DataConfig = field(default_factory=DataConfig)


def train_cluster_online(
    config: ClusterTrainRunConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
) -> dict:
    """Learn a Cluster codebook online into ``out_dir``; returns the run summary."""
    out_dir = Path(out_dir)
    model_cfg, train, data = config.model, config.train, config.data
    accelerator = make_accelerator(train)
    main, world = accelerator.is_main_process, accelerator.num_processes
    if train.batch_size % world:
        raise SemtokError(f"train.batch_size {train.batch_size} is not divisible by the {world} processes")
    started = time.time()
    teacher = build_cluster_teacher(model_cfg)
    if model_cfg.feature_dim not in (0, teacher.feature_dim):
        raise SemtokError(
            f"model.feature_dim is {model_cfg.feature_dim} but teacher '{model_cfg.teacher}' gives "
            f"{teacher.feature_dim}-d features"
        )
    model_cfg.feature_dim = teacher.feature_dim
    teacher = teacher.to(accelerator.device)
    train_set = build_dataset(
        data.dataset,
        "train",
        model_cfg.image_size,
        augment=data.augment,
        crop_scale=data.crop_scale,
        seed=train.seed,
    )
    codebook = OnlineCodebook(model_cfg.num_codes, model_cfg.feature_dim, model_cfg.kmeans_iters)
    existing = open_run_dir(out_dir, resume, main, {"kind": "cluster", **to_dict(config)})
    optimizer = torch.optim.AdamW(
        codebook.parameters(), lr=train.lr, betas=tuple(train.betas), weight_decay=train.weight_decay
    )
    start_step = 0
    if existing is not None:
        start_step = load_checkpoint(
            existing, {"codebook": codebook}, {"codebook": optimizer}, kind="cluster"
        )["step"]
    codebook, optimizer = accelerator.prepare(codebook, optimizer)
    unwrapped: OnlineCodebook = accelerator.unwrap_model(codebook)

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
    window_counts = torch.zeros(model_cfg.num_codes, dtype=torch.long)
    last_step = min(train.steps, stop_at) if stop_at else train.steps
    bar = tqdm(
        total=train.steps,
        initial=start_step,
        desc="cluster",
        disable=not (main and progress),
        dynamic_ncols=True,
    )
    step, values, reseeded_total = start_step, {}, 0
    while step < last_step:
        images, _, _ = next(stream)
        with torch.no_grad():
            features = teacher(images.to(accelerator.device, non_blocking=True))
        x = F.normalize(features.permute(0, 2, 3, 1).reshape(-1, features.shape[1]).float(), dim=-1)
        if not bool(unwrapped.initialized):
            unwrapped.initialize(x)
        lr = warmup_cosine_lr(step, train.lr, train.warmup_steps, train.steps, train.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss, ids, counts = codebook(x)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        optimizer.step()
        if world > 1:
            dist.all_reduce(counts)
        reseeded = unwrapped.reseed(x, counts, config.codebook.reseed_steps)
        reseeded_total += reseeded
        step += 1
        window_counts += code_histogram(ids.detach(), model_cfg.num_codes)
        if step % train.log_every == 0 or step == last_step:
            stats = codebook_stats(window_counts)
            window_counts.zero_()
            with torch.no_grad():
                cosine = (x * F.embedding(ids, unwrapped.codes())).sum(-1).mean().item()
            values = {
                "loss/codebook": loss.item(),
                "cosine": cosine,
                "codebook/usage_window": stats["usage"],
                "codebook/perplexity_window": stats["perplexity"],
                "codebook/reseeded": reseeded,
                "lr": lr,
            }
            log.scalars(step, values)
            bar.set_postfix(loss=f"{loss.item():.4f}", cos=f"{cosine:.3f}", usage=f"{stats['usage']:.2f}")
        bar.update(1)
        checkpoint_if_due(
            accelerator,
            out_dir,
            step,
            last_step,
            train,
            {"codebook": unwrapped},
            {"codebook": optimizer},
            {"kind": "cluster", "world_size": world},
        )
    bar.close()
    log.close()
    accelerator.wait_for_everyone()

    summary: dict[str, Any] = {}
    if main and step < train.steps:
        summary = {"kind": "cluster", "stopped_at_step": step, "steps": train.steps, "tokenizer": None}
    elif main:
        tokenizer = ClusterTokenizer(model_cfg, teacher=teacher.cpu())
        tokenizer.quantizer.set_codebook(unwrapped.codes().detach().cpu())
        tokenizer.eval().save_pretrained(out_dir / "tokenizer")
        summary = {
            "kind": "cluster",
            "method": "online (codebook loss + re-seeding)",
            "steps": train.steps,
            "resumed_from_step": start_step if resume else None,
            "train_seconds_this_session": round(time.time() - started, 1),
            "final_losses": values,
            "codes_reseeded_this_session": reseeded_total,
            "teacher": model_cfg.teacher,
            "train_images": len(train_set),
            "processes": world,
            "device": str(accelerator.device),
            "tokenizer": str(out_dir / "tokenizer"),
        }
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
