"""ConvNeXt teacher from timm: the output of a stage (the last one by default, stride 32).

Feature maps are coarse (7x7 at 224 px); the tokenizer resizes them to its grid with ``resize_features``.
"""

from __future__ import annotations

import os

import torch

from semtok.errors import SemtokError
from semtok.teachers.base import Teacher, create_timm_model


class ConvNeXtTeacher(Teacher):
    """A timm ConvNeXt; ``stride`` 4, 8, 16 or 32 picks the stage (only the stages needed are run)."""

    def __init__(
        self,
        timm_name: str = "convnext_base.fb_in22k_ft_in1k",
        *,
        name: str | None = None,
        input_size: int = 224,
        stride: int = 32,
        weights: str | os.PathLike | None = None,
        pretrained: bool = True,
        random_init: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.name = name or timm_name
        self.timm_name = timm_name
        self.model, self.weights_source = create_timm_model(
            self.name,
            timm_name,
            weights=weights,
            pretrained=pretrained,
            random_init=random_init,
            seed=seed,
            num_classes=0,
        )
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
        cfg = self.model.pretrained_cfg
        self.mean = tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406)))
        self.std = tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225)))
        self.freeze()

    def extract(self, pixels_B3HW: torch.Tensor) -> torch.Tensor:
        x = self.model.stem(pixels_B3HW)
        for stage in self.model.stages[: self._num_stages]:
            x = stage(x)
        if self._num_stages == len(self.model.stages):
            x = self.model.norm_pre(x)
        return x
