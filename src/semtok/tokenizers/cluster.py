"""Cluster: a frozen image-understanding teacher as the encoder and a clustered codebook of its patch features.

images [B, 3, H, W] in [-1, 1] -> teacher -> features [B, C, h, w] -> l2-normalise -> nearest code by cosine
-> ids [B, h, w]. The codebook [K, C] holds unit-norm centroids of teacher patch features: built offline by
spherical k-means over stored features (``semtok build cluster``, :mod:`semtok.tokenizers.cluster_build`).
``decode_features(ids)`` gives the centroids as a feature map; ``decode(ids)`` gives images once
`semtok train decoder` has attached a pixel decoder.

The teacher's weights are saved in ``model.safetensors`` with the codebook, so a tokenizer folder is
self-contained: loading builds the teacher's architecture with random weights (no hub access, no wheel
file needed) and the saved tensors replace them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from semtok.errors import SemtokError
from semtok.quantizers.cluster_codebook import ClusterCodebook
from semtok.teachers.base import Teacher
from semtok.teachers.config import ClusterTeacherConfig, build_teacher_from_config, upgrade_legacy_teacher
from semtok.tokenizers.base import register_tokenizer
from semtok.tokenizers.conv_config import upgrade_legacy_pixel_decoder
from semtok.tokenizers.feature import FeatureTokenizer
from semtok.tokenizers.pixel_decoder import PixelDecoder, PixelDecoderConfig


@dataclass
class ClusterConfig:
    """A Cluster tokenizer: its teacher (the encoder) and its codebook of ``num_codes`` x ``teacher.dim``.

    ``teacher.weights`` records where the build read the teacher from (the folder keeps a copy); ``teacher.dim``
    is filled in from the teacher by the build. ``kmeans_iters`` and ``kmeans_seed`` record how the codebook
    was built (``semtok build cluster``).
    """

    image_size: int = 256
    teacher: ClusterTeacherConfig = field(default_factory=ClusterTeacherConfig)
    num_codes: int = 8192
    kmeans_iters: int = 20
    kmeans_seed: int = 0
    pixel_decoder: PixelDecoderConfig | None = None  # added by `semtok train decoder`

    def __post_init__(self) -> None:
        for key in ("image_size", "num_codes"):
            if getattr(self, key) < 1:
                raise SemtokError(f"config key 'model.{key}': expected an int >= 1, got {getattr(self, key)}")
        if self.kmeans_iters < 0:
            raise SemtokError(
                f"config key 'model.kmeans_iters': expected an int >= 0, got {self.kmeans_iters}"
            )

    @classmethod
    def upgrade_legacy(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """The ``model`` mapping of a folder saved before the sections (flat ``teacher*`` keys,
        ``feature_dim`` and the pixel decoder's conv keys) in today's shape."""
        return upgrade_legacy_pixel_decoder(upgrade_legacy_teacher(raw, dim_key="feature_dim"))


@register_tokenizer
class ClusterTokenizer(FeatureTokenizer):
    """Frozen teacher + cosine codebook of its clustered patch features (see the module docstring).

    ``ClusterTokenizer(config)`` builds the teacher with random weights (for loading a saved folder);
    pass ``teacher=`` (e.g. ``build_teacher_from_config(config.teacher)``) to wrap a pretrained one.
    """

    kind = "cluster"
    config_class = ClusterConfig

    def __init__(self, config: ClusterConfig, teacher: Teacher | None = None) -> None:
        super().__init__(config)
        if teacher is None:
            teacher = build_teacher_from_config(config.teacher, random_init=True)
        if config.teacher.dim <= 0:
            raise SemtokError("config key 'model.teacher.dim' must be set (it comes from the teacher)")
        if teacher.feature_dim != config.teacher.dim:
            raise SemtokError(
                f"teacher '{config.teacher.name}' gives {teacher.feature_dim}-d features, config key "
                f"'model.teacher.dim' says {config.teacher.dim}"
            )
        self.teacher = teacher.freeze()
        self.quantizer = ClusterCodebook(config.num_codes, config.teacher.dim)
        self.pixel_decoder = PixelDecoder(config.pixel_decoder) if config.pixel_decoder else None

    @property
    def grid_size(self) -> tuple[int, int]:
        side = int(self.teacher.grid_size)
        return side, side

    @torch.no_grad()
    def features(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """Teacher patch features [B, C, h, w] float32 (not normalised) of images [B, 3, H, W] in [-1, 1]."""
        if images_B3HW.ndim != 4 or images_B3HW.shape[1] != 3:
            raise SemtokError(f"images must be [B, 3, H, W], got {list(images_B3HW.shape)}")
        return self.teacher(images_B3HW)

    @torch.no_grad()
    def assign(self, features_BChw: torch.Tensor) -> torch.Tensor:
        """Teacher features [B, C, h, w] -> ids [B, h, w] int64 (nearest code by cosine)."""
        B, C, h, w = features_BChw.shape
        ids_N = self.quantizer.assign(features_BChw.permute(0, 2, 3, 1).reshape(-1, C))
        return ids_N.view(B, h, w)

    @torch.no_grad()
    def encode(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] float in [-1, 1] -> token ids [B, h, w] int64 in [0, num_codes)
        (h = w = the teacher's grid at its input size)."""
        return self.assign(self.features(images_B3HW))

    def forward(self, images_B3HW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """(centroid map [B, C, h, w], ids [B, h, w], codebook aux); nothing here has a gradient."""
        quantized, ids, aux = self.quantizer(self.features(images_B3HW).permute(0, 2, 3, 1))
        return quantized.permute(0, 3, 1, 2).contiguous(), ids, aux

    @torch.no_grad()
    def decode_features(self, ids_BHW: torch.Tensor) -> torch.Tensor:
        """Token ids [B, h, w] int64 -> the codes' centroids [B, C, h, w] float32 (unit norm per cell);
        the same as :meth:`code_vectors`."""
        return self.code_vectors(ids_BHW)
