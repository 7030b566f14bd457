"""VQ-KD: a ViT tokenizer whose codes are trained to reconstruct a frozen teacher's patch features.

encoder (ViT) -> task head (W -> W -> tanh -> code_dim) -> vector quantizer (cosine, EMA, k-means init)
-> feature decoder (ViT, shallow) -> teacher feature space. Loss: 1 - cosine per token + commitment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from semtok.errors import SemtokError
from semtok.nn.vit import ViTDecoder, ViTEncoder, init_weights, vit_size
from semtok.quantizers.vector_quantizer import VectorQuantizer
from semtok.teachers.config import TeacherConfig, upgrade_legacy_teacher
from semtok.tokenizers.base import check_ids, eval_mode, register_tokenizer
from semtok.tokenizers.conv_config import upgrade_legacy_pixel_decoder
from semtok.tokenizers.feature import FeatureTokenizer
from semtok.tokenizers.pixel_decoder import PixelDecoder, PixelDecoderConfig
from semtok.tokenizers.vq_config import VQKDQuantizerConfig, check_quantizer, upgrade_legacy_quantizer

DECODER_HEADS = ("linear", "tanh_mlp")


@dataclass
class VQKDConfig:
    """Architecture of a VQ-KD tokenizer; ``teacher`` records which teacher it was distilled from (its ``dim``
    is filled in from the teacher when training starts)."""

    image_size: int = 224
    patch_size: int = 16
    encoder: str = "base"  # ViT size: tiny | small | base | large
    encoder_depth: int = 0  # 0: the size's own depth
    encoder_width: int = 0  # 0: the size's own width (an imported checkpoint's other sizes)
    encoder_heads: int = 0  # 0: the size's own number of heads
    cls_token: bool = False  # encoder and feature decoder run a CLS token through their blocks (BEiT v2)
    quantizer: VQKDQuantizerConfig = field(default_factory=VQKDQuantizerConfig)
    decoder_width: int = 768
    decoder_depth: int = 1
    decoder_heads: int = 12
    decoder_head: str = "linear"  # "linear" | "tanh_mlp" (BEiT v2's decode_task_layer)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    pixel_decoder: PixelDecoderConfig | None = None  # added by `semtok train decoder`

    def __post_init__(self) -> None:
        check_quantizer(self.quantizer)
        if self.image_size % self.patch_size:
            raise SemtokError(
                f"config: model.image_size {self.image_size} is not a multiple of model.patch_size {self.patch_size}"
            )
        vit_size(self.encoder)
        if self.decoder_head not in DECODER_HEADS:
            raise SemtokError(
                f"config key 'model.decoder_head': expected one of {', '.join(DECODER_HEADS)}, "
                f"got {self.decoder_head!r}"
            )
        width, _, heads = self.encoder_shape
        if width % heads:
            raise SemtokError(f"config: encoder width {width} is not a multiple of its {heads} heads")

    @property
    def encoder_shape(self) -> tuple[int, int, int]:
        """(width, depth, heads) of the encoder: the named size with the ``encoder_*`` overrides applied."""
        width, depth, heads = vit_size(self.encoder)
        return self.encoder_width or width, self.encoder_depth or depth, self.encoder_heads or heads

    @classmethod
    def upgrade_legacy(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """The ``model`` mapping of a folder saved before the sections (flat ``teacher_*``, quantizer and pixel-decoder conv keys) in
        today's shape."""
        return upgrade_legacy_pixel_decoder(upgrade_legacy_quantizer(upgrade_legacy_teacher(raw)))


@register_tokenizer
class VQKDTokenizer(FeatureTokenizer):
    kind = "vqkd"
    config_class = VQKDConfig

    def __init__(self, config: VQKDConfig) -> None:
        super().__init__(config)
        if config.teacher.dim <= 0:
            raise SemtokError("config key 'model.teacher.dim' must be set (it comes from the teacher)")
        width, depth, heads = config.encoder_shape
        self.encoder = ViTEncoder(
            config.image_size, config.patch_size, width, depth, heads, cls_token=config.cls_token
        )
        self.task_head = nn.Sequential(
            nn.Linear(width, width), nn.Tanh(), nn.Linear(width, config.quantizer.code_dim)
        )
        self.quantizer = VectorQuantizer.from_config(config.quantizer)
        grid = config.image_size // config.patch_size
        self.decoder = ViTDecoder(
            grid,
            config.quantizer.code_dim,
            config.decoder_width,
            config.decoder_depth,
            config.decoder_heads,
            config.teacher.dim,
            cls_token=config.cls_token,
            head=config.decoder_head,
        )
        init_weights(self.encoder)
        init_weights(self.task_head)
        init_weights(self.decoder)
        self.pixel_decoder = PixelDecoder(config.pixel_decoder) if config.pixel_decoder else None

    @property
    def num_codes(self) -> int:
        """Codebook size, from the config (``config.quantizer.num_codes``)."""
        return self.config.quantizer.num_codes

    @property
    def grid_size(self) -> tuple[int, int]:
        side = self.config.image_size // self.config.patch_size
        return side, side

    def _check_images(self, images_B3HW: torch.Tensor) -> None:
        if images_B3HW.ndim != 4 or images_B3HW.shape[1] != 3:
            raise SemtokError(f"images must be [B, 3, H, W], got {list(images_B3HW.shape)}")
        if images_B3HW.shape[-1] % self.config.patch_size or images_B3HW.shape[-2] % self.config.patch_size:
            raise SemtokError(
                f"image size {tuple(images_B3HW.shape[-2:])} is not a multiple of the patch size {self.config.patch_size}"
            )

    def features(self, images_B3HW: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """Pre-quantization code vectors [B, h*w, code_dim] and the grid (h, w)."""
        self._check_images(images_B3HW)
        tokens_BNW, grid_hw = self.encoder(images_B3HW)
        return self.task_head(tokens_BNW), grid_hw

    def forward(self, images_B3HW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Training pass: (decoded teacher-space features [B, C, h, w], ids [B, h, w], quantizer aux)."""
        z_BND, (h, w) = self.features(images_B3HW)
        quantized_BND, ids_BN, aux = self.quantizer(z_BND)
        decoded_BNC = self.decoder(quantized_BND, (h, w))
        B = decoded_BNC.shape[0]
        decoded_BChw = decoded_BNC.transpose(1, 2).reshape(B, -1, h, w)
        return decoded_BChw, ids_BN.view(B, h, w), aux

    @torch.no_grad()
    def encode(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """Images [B, 3, H, W] float in [-1, 1] -> token ids [B, H/p, W/p] int64 in [0, num_codes).

        Never changes the codebook, even in training mode.
        """
        z_BND, (h, w) = self.features(images_B3HW)
        with eval_mode(self.quantizer):
            _, ids_BN, _ = self.quantizer(z_BND)
        return ids_BN.view(-1, h, w)

    @torch.no_grad()
    def decode_features(self, ids_BHW: torch.Tensor) -> torch.Tensor:
        """Token ids [B, h, w] int64 -> reconstructed teacher features [B, teacher.dim, h, w] float32."""
        check_ids(ids_BHW, self.num_codes)
        B, h, w = ids_BHW.shape
        codes_BND = self.quantizer.lookup(ids_BHW.reshape(B, h * w))
        decoded_BNC = self.decoder(codes_BND, (h, w))
        return decoded_BNC.transpose(1, 2).reshape(B, -1, h, w)
