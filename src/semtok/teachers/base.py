"""The teacher interface: a frozen image-understanding model that gives patch features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Teacher(nn.Module):
    """A frozen image-understanding model behind one interface.

    Subclasses set ``feature_dim`` (C), ``stride`` (pixels of the teacher's own input per feature cell),
    ``input_size`` (the square side, in pixels, the teacher reads) and implement ``extract``.
    ``forward`` takes images in [-1, 1], resizes them to ``input_size``, applies the teacher's own
    input normalisation and returns ``features_BChw`` (float32, h = w = input_size // stride).
    Teachers are always frozen and in eval mode.
    """

    feature_dim: int
    stride: int
    input_size: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def freeze(self) -> Teacher:
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> Teacher:  # noqa: ARG002 - teachers stay in eval mode
        return super().train(False)

    @property
    def grid_size(self) -> int:
        return self.input_size // self.stride

    def normalize(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """Map images in [-1, 1] to the teacher's input: resized to ``input_size`` and normalised."""
        images = images_B3HW.float()
        if images.shape[-1] != self.input_size or images.shape[-2] != self.input_size:
            images = F.interpolate(
                images, size=(self.input_size, self.input_size), mode="bicubic", align_corners=False
            )
        images_01 = (images + 1.0) / 2.0
        mean = images.new_tensor(self.mean).view(1, 3, 1, 1)
        std = images.new_tensor(self.std).view(1, 3, 1, 1)
        return (images_01 - mean) / std

    def extract(self, pixels_B3HW: torch.Tensor) -> torch.Tensor:
        """Features ``[B, C, h, w]`` of already-normalised input at ``input_size``."""
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        return self.extract(self.normalize(images_B3HW)).float()


def resize_features(features_BChw: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
    """Resize teacher feature maps to the student's token grid (bicubic, as in the paper)."""
    if tuple(features_BChw.shape[-2:]) == tuple(grid_hw):
        return features_BChw
    return F.interpolate(features_BChw.float(), size=grid_hw, mode="bicubic", align_corners=False)
