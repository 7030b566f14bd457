"""The VQ-KD stage: distil a tokenizer from a frozen teacher's features (1 - cosine per token + commitment)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from semtok.data.config import DataConfig
from semtok.losses.distillation import cosine_distillation_loss
from semtok.teachers.base import Teacher, teacher_targets
from semtok.teachers.config import build_resolved_teacher
from semtok.tokenizers.vqkd import VQKDConfig, VQKDTokenizer
from semtok.training.batches import map_in_order
from semtok.training.config import TrainConfig
from semtok.training.engine import Engine, Setup, Stage
from semtok.training.optim import build_optimizer


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
    return map_in_order(
        lambda images: teacher_targets(teacher, images, grid_hw),
        dataset,
        batch_size,
        device,
        show,
        "teacher cache",
    )


class VQKDStage(Stage):
    config_class = VQKDRunConfig

    def setup(self, engine: Engine) -> Setup:
        train = self.config.train
        teacher, teacher_config = build_resolved_teacher(self.config.model.teacher)
        self.teacher = teacher.to(engine.device)
        model_config = dataclasses.replace(self.config.model, teacher=teacher_config)
        self.config = dataclasses.replace(self.config, model=model_config)
        train_set = self.image_train_set(model_config.image_size)
        self.model = VQKDTokenizer(model_config)
        self.train_set = train_set
        return Setup(
            train_set=train_set,
            modules={"model": self.model},
            optimizers={"model": build_optimizer(self.model, train)},
            num_codes=model_config.quantizer.num_codes,
            progress=("loss/total", "loss/distill", "codebook/usage_window"),
        )

    def after_resume(self, engine: Engine) -> None:
        """Cache the teacher's targets of every train image when nothing random changes them."""
        train, grid_hw = self.config.train, self.model.grid_size
        train_set = self.train_set
        augmented = self.config.data.augment != "none"
        streamed = getattr(train_set, "is_stream", False)  # a stream has no random access by index: no cache
        self.cache = None
        if train.cache_teacher and not augmented and not streamed:
            size_gb = len(train_set) * self.teacher.feature_dim * grid_hw[0] * grid_hw[1] * 4 / 1e9
            if size_gb <= train.max_cache_gb:
                show = engine.is_main and engine.show_progress
                with engine.accelerator.autocast():  # the student's precision, as the uncached path
                    self.cache = cache_targets(self.teacher, train_set, grid_hw, 256, engine.device, show)
        if self.cache is not None:
            self.cache_note = "cached (no random augmentation)"
        elif streamed:
            self.cache_note = "computed every step (streamed shards)"
        elif augmented:
            self.cache_note = "computed every step (random augmentation)"
        else:
            self.cache_note = "computed every step (cache off or too large)"

    def step(self, batch: tuple[torch.Tensor, ...], engine: Engine) -> dict[str, Any]:
        images, _, indices = batch
        images = images.to(engine.device, non_blocking=True)
        if self.cache is not None:
            targets = self.cache[indices].to(engine.device)
        else:
            with torch.no_grad(), engine.accelerator.autocast():  # the student's precision, no graph
                targets = teacher_targets(self.teacher, images, self.model.grid_size).float()
        with engine.accelerator.autocast():
            decoded, ids, aux = engine.modules["model"](images)
        distill = cosine_distillation_loss(decoded, targets)
        loss = distill + aux["loss"]
        engine.optimize("model", loss)
        return {
            "loss/total": loss.detach(),
            "loss/distill": distill.detach(),
            "loss/commit": aux["commit_loss"],
            "ids": ids,
        }

    def finish(self, engine: Engine) -> tuple[VQKDTokenizer, dict[str, Any]]:
        fields = {"teacher": self.config.model.teacher.name, "teacher_features": self.cache_note}
        return self.model, fields

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        return [
            f"tokenizer: {summary['tokenizer']}",
            f"teacher features: {summary['teacher_features']}; skipped files: {summary['skipped_files']}",
        ]
