"""Vision Transformer teachers from timm: DINO, DINOv2, MAE and supervised ViT.

Features are the patch tokens after the final norm (CLS and register tokens dropped), reshaped to
``[B, C, h, w]`` with ``h = w = input_size // patch_size``. Each teacher normalises its input with the mean
and std of its own pretrained config.
"""

from __future__ import annotations

import torch

from semtok.errors import SemtokError
from semtok.teachers.base import PRETRAINED, WeightsChoice, tokens_to_map
from semtok.teachers.timm_teacher import TimmTeacher


class TimmViTTeacher(TimmTeacher):
    """A timm ``VisionTransformer`` giving final-norm patch tokens.

    ``input_size`` defaults to 224 (DINOv2's 518 is resampled to 224 -> 16x16 tokens) and must be a
    multiple of the patch size; position embeddings of loaded weights are resampled to it.
    """

    def __init__(
        self,
        timm_name: str,
        *,
        name: str | None = None,
        input_size: int = 224,
        weights: WeightsChoice = PRETRAINED,
    ) -> None:
        super().__init__(timm_name, name, weights, num_classes=0, img_size=int(input_size))
        patch = self.model.patch_embed.patch_size
        patch = patch[0] if isinstance(patch, tuple | list) else patch
        if input_size % patch:
            raise SemtokError(
                f"teacher {self.name!r}: input_size {input_size} is not a multiple of the patch size {patch}"
            )
        self.stride = int(patch)
        self.input_size = int(input_size)
        self.feature_dim = int(self.model.num_features)
        self.num_prefix_tokens = int(getattr(self.model, "num_prefix_tokens", 1))
        self.freeze()

    def extract(self, pixels_B3HW: torch.Tensor) -> torch.Tensor:
        tokens_BNC = self.model.forward_features(pixels_B3HW)[:, self.num_prefix_tokens :]
        return tokens_to_map(tokens_BNC, pixels_B3HW.shape[-1] // self.stride, self.name)
