"""ConvNeXt teacher from timm: the output of a stage (the last one by default, stride 32).

Feature maps are coarse (7x7 at 224 px); the tokenizer resizes them to its grid with ``resize_features``.
"""

from __future__ import annotations

import torch

from semtok.errors import SemtokError
from semtok.teachers.base import PRETRAINED, WeightsChoice
from semtok.teachers.timm_teacher import TimmTeacher


class ConvNeXtTeacher(TimmTeacher):
    """A timm ConvNeXt; ``stride`` 4, 8, 16 or 32 picks the stage (only the stages needed are run)."""

    def __init__(
        self,
        timm_name: str = "convnext_base.fb_in22k_ft_in1k",
        *,
        name: str | None = None,
        input_size: int = 224,
        stride: int = 32,
        weights: WeightsChoice = PRETRAINED,
    ) -> None:
        super().__init__(timm_name, name, weights, num_classes=0)
        stages = {int(info["reduction"]): index for index, info in enumerate(self.model.feature_info)}
        if stride not in stages:
            raise SemtokError(
                f"teacher {self.name!r}: stride {stride} not available; choose one of {sorted(stages)}"
            )
        if input_size % 32:
            raise SemtokError(f"teacher {self.name!r}: input_size {input_size} is not a multiple of 32")
        self._num_stages = stages[stride] + 1
        self.stride = int(stride)
        self.input_size = int(input_size)
        self.feature_dim = int(self.model.feature_info[stages[stride]]["num_chs"])
        self.freeze()

    def extract(self, pixels_B3HW: torch.Tensor) -> torch.Tensor:
        x = self.model.stem(pixels_B3HW)
        for stage in self.model.stages[: self._num_stages]:
            x = stage(x)
        if self._num_stages == len(self.model.stages):
            x = self.model.norm_pre(x)
        return x
