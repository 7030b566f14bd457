"""Train the judge: a small ResNet-style classifier of the data set's classes (``semtok train judge``).

Cross-entropy on the train split (light augmentation: for digits a small random crop and no flip), AdamW with
warm-up + cosine, the same resumable batch order, checkpoints (kind ``judge``), TensorBoard and ``log.jsonl`` as
the other stages. At the end the judge's top-1 accuracy on the val split is measured and the judge is written to
``OUT/judge/`` (``config.json`` with the accuracy in its ``info``, ``model.safetensors``) and the run's facts to
``OUT/summary.json``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from semtok.data import build_dataset
from semtok.data.config import DataConfig
from semtok.errors import SemtokError
from semtok.evaluation.common import iterate_batches
from semtok.evaluation.judge import Judge, JudgeConfig
from semtok.training.config import TrainConfig
from semtok.training.engine import Engine, Setup, Stage
from semtok.training.optim import build_optimizer


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


class JudgeStage(Stage):
    config_class = JudgeRunConfig
    folder = "judge"

    def setup(self, engine: Engine) -> Setup:
        model, train, data = self.config.model, self.config.train, self.config.data
        train_set = self.image_train_set(model.image_size)
        class_names = _checked_classes(train_set, model, data.dataset)
        model = dataclasses.replace(model, class_names=[str(name) for name in class_names])
        self.judge = Judge(model)
        return Setup(
            train_set=train_set,
            modules={"model": self.judge},
            optimizers={"model": build_optimizer(self.judge, train)},
            windowed=("loss/cross_entropy", "train/top1_window"),
            progress=("loss/cross_entropy", "train/top1_window"),
        )

    def step(self, batch: tuple[torch.Tensor, ...], engine: Engine) -> dict[str, Any]:
        images = batch[0].to(engine.device, non_blocking=True)
        labels = batch[1].to(engine.device, non_blocking=True)
        if int(labels.min()) < 0 or int(labels.max()) >= self.judge.num_classes:
            raise SemtokError(
                f"data.dataset '{self.config.data.dataset}': label {int(labels.min())}..{int(labels.max())} "
                f"outside [0, {self.judge.num_classes}) at step {engine.step_index}"
            )
        with engine.accelerator.autocast():
            logits = engine.modules["model"](images)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.config.loss.label_smoothing)
        engine.optimize("model", loss)
        top1 = (logits.detach().argmax(dim=1) == labels).float().mean()
        return {"loss/cross_entropy": loss.detach(), "train/top1_window": top1}

    def finish(self, engine: Engine) -> tuple[Judge, dict[str, Any]]:
        data = self.config.data
        self.judge.eval()
        val_set = build_dataset(
            data.dataset, "val", self.judge.config.image_size, augment="none", labels=data.labels
        )
        val = evaluate_judge(self.judge, val_set, progress=engine.show_progress)
        engine.log(engine.step_index, {"val/top1": val["top1"]})
        self.judge.info = {
            "val_top1": val["top1"],
            "val_images": val["images"],
            "data": data.dataset,
            "train_steps": self.config.train.steps,
        }
        fields = {
            "val_top1": val["top1"],
            "val_images": val["images"],
            "val_per_class_top1": val["per_class_top1"],
            "data": data.dataset,
            "augment": data.augment,
        }
        return self.judge, fields

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        return [
            f"judge: {summary['judge']}",
            f"val top-1: {summary['val_top1']:.4f} on {summary['val_images']} images "
            f"({summary['train_seconds_this_session']} s)",
        ]
