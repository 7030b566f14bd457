"""The judge: a small ResNet-style classifier that tells which class an image shows.

It is trained on the train split of a labelled data set (``semtok train judge``; the embedded default is
MNIST-5k as RGB 32x32, 10 classes) and then scores class-conditional generators: the share of samples generated
for label ``y`` that the judge classifies as ``y`` (:func:`class_accuracy`).

Folder format (every model's, see ``semtok.hub.pretrained``): ``config.json`` (``kind: "judge"``, the
semtok version, the :class:`JudgeConfig` fields and free-form ``info`` such as the validation accuracy) and
``model.safetensors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from semtok.errors import SemtokError
from semtok.hub.pretrained import PretrainedModel

__all__ = ["Judge", "JudgeConfig", "class_accuracy"]

KIND = "judge"


@dataclass
class JudgeConfig:
    """Architecture of the judge.

    ``stages`` stages of ``depth`` residual blocks each; stage ``i`` has ``width * 2**i`` channels and halves the
    resolution (after the first). The stem is a 3x3 conv with stride ``stem_stride``. ``class_names`` is filled
    in from the training data set (its index order is the logit order).
    """

    image_size: int = 32
    num_classes: int = 10
    in_channels: int = 3
    width: int = 32
    depth: int = 1
    stages: int = 3
    stem_stride: int = 1
    dropout: float = 0.0
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for key in ("image_size", "num_classes", "in_channels", "width", "depth", "stages", "stem_stride"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise SemtokError(f"config key 'model.{key}': expected a positive integer, got {value!r}")
        if self.num_classes < 2:
            raise SemtokError(f"config key 'model.num_classes': expected at least 2, got {self.num_classes}")
        if not 0.0 <= self.dropout < 1.0:
            raise SemtokError(f"config key 'model.dropout': expected 0 <= dropout < 1, got {self.dropout}")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise SemtokError(
                f"config key 'model.class_names': expected {self.num_classes} names, got {len(self.class_names)}"
            )
        if self.image_size < self.stem_stride * 2 ** (self.stages - 1):
            raise SemtokError(
                f"config key 'model.image_size': {self.image_size} px is too small for {self.stages} stages "
                f"with stem_stride {self.stem_stride}"
            )


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm (batch-independent: a judge's verdict on an image never depends on its batch)."""
    return nn.GroupNorm(min(8, channels), channels)


class BasicBlock(nn.Module):
    """Pre-activation residual block: (norm, SiLU, conv3x3) x 2, with a 1x1 strided shortcut when shapes change."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.norm2 = _norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.shortcut = (
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.shortcut(x) + h


class Judge(nn.Module, PretrainedModel):
    """Image classifier: ``classify(images_B3HW in [-1, 1]) -> logits [B, num_classes]`` (float32).

    ``forward`` is the raw network on images already at ``config.image_size`` (used in training);
    ``classify`` also accepts uint8 images and other sizes (resized, see :meth:`prepare`).
    ``save_pretrained`` / ``from_pretrained`` (a judge folder, a run folder holding ``judge/``, or a hub repo id):
    :class:`semtok.hub.pretrained.PretrainedModel`.
    """

    kind: ClassVar[str] = KIND
    config_class: ClassVar[type] = JudgeConfig
    run_folder: ClassVar[str] = "judge"
    config_prefix: ClassVar[str] = "model."

    def __init__(self, config: JudgeConfig, info: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config = config
        self.info = dict(info or {})
        width = config.width
        self.stem = nn.Conv2d(config.in_channels, width, 3, config.stem_stride, 1, bias=False)
        blocks: list[nn.Module] = []
        channels = width
        for stage in range(config.stages):
            out_channels = width * 2**stage
            for index in range(config.depth):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(channels, out_channels, stride))
                channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.norm = _norm(channels)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(channels, config.num_classes)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def forward(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """Float images [B, in_channels, S, S] in [-1, 1] -> logits [B, num_classes]."""
        h = self.blocks(self.stem(images_B3HW))
        h = F.silu(self.norm(h)).mean(dim=(2, 3))
        return self.head(self.dropout(h))

    def prepare(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """Check and convert images for the network: uint8 [B, C, H, W] (0..255) or float in [-1, 1] -> float32
        [B, C, S, S] in [-1, 1] on the judge's device, ``S = config.image_size`` (other sizes are resized like the
        data sets' val transform: bicubic, antialiased, clamped back to [-1, 1])."""
        if not isinstance(images_B3HW, torch.Tensor):
            raise SemtokError(
                f"judge: expected a tensor of images [B, 3, H, W], got {type(images_B3HW).__name__}"
            )
        if images_B3HW.dim() != 4 or images_B3HW.shape[1] != self.config.in_channels:
            raise SemtokError(
                f"judge: expected images [B, {self.config.in_channels}, H, W], got shape {tuple(images_B3HW.shape)}"
            )
        device = next(self.parameters()).device
        if images_B3HW.dtype == torch.uint8:
            images = images_B3HW.to(device=device, dtype=torch.float32) / 127.5 - 1.0
        elif images_B3HW.is_floating_point():
            images = images_B3HW.to(device=device, dtype=torch.float32)
        else:
            raise SemtokError(f"judge: expected uint8 or float images, got {images_B3HW.dtype}")
        size = self.config.image_size
        if tuple(images.shape[-2:]) != (size, size):
            images = F.interpolate(
                images, size=(size, size), mode="bicubic", antialias=True, align_corners=False
            )
            images = images.clamp(-1.0, 1.0)
        return images

    @torch.no_grad()
    def classify(self, images_B3HW: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """Logits [B, num_classes] float32 (on CPU) of images [B, 3, H, W] (float in [-1, 1] or uint8), in eval
        mode, ``batch_size`` images per forward pass; the mode the judge was in is restored afterwards."""
        was_training = self.training
        self.eval()
        try:
            out = [
                self(self.prepare(images_B3HW[start : start + batch_size])).float().cpu()
                for start in range(0, images_B3HW.shape[0], batch_size)
            ]
        finally:
            self.train(was_training)
        if not out:
            return torch.zeros(0, self.num_classes)
        return torch.cat(out)


def class_accuracy(
    judge: Judge, images_B3HW: torch.Tensor, labels_B: torch.Tensor, batch_size: int = 256
) -> float:
    """Top-1 accuracy in [0, 1] of ``judge`` on images [B, 3, H, W] (float in [-1, 1] or uint8) with int labels [B].

    For a class-conditional generator, ``labels_B`` are the labels the images were generated for.
    """
    labels = torch.as_tensor(labels_B).reshape(-1).long().cpu()
    if labels.shape[0] != images_B3HW.shape[0]:
        raise SemtokError(
            f"class_accuracy: {images_B3HW.shape[0]} images but {labels.shape[0]} labels; expected one label each"
        )
    if labels.shape[0] == 0:
        raise SemtokError("class_accuracy: no images given")
    if labels.min() < 0 or labels.max() >= judge.num_classes:
        raise SemtokError(
            f"class_accuracy: labels must be in [0, {judge.num_classes}), got [{int(labels.min())}, {int(labels.max())}]"
        )
    predictions = judge.classify(images_B3HW, batch_size=batch_size).argmax(dim=1)
    return float((predictions == labels).double().mean())
