"""Pixel-reconstruction tokenizers: VQGAN (Esser et al. 2021) and CVQ-VAE (Zheng & Vedaldi 2023).

images [B, 3, H, W] -> ConvEncoder -> 1x1 quant_conv -> quantizer -> 1x1 post_quant_conv -> ConvDecoder
-> images. ``ConvQuantTokenizer`` holds that pipeline for any quantizer with the semtok triple and a
``lookup``; VQGAN uses the EMA :class:`~semtok.quantizers.vector_quantizer.VectorQuantizer` (L2, k-means
init), CVQ-VAE the same quantizer with cosine distance and re-seeding of rarely used codes, and FSQ
(``semtok.tokenizers.fsq``) a finite scalar quantizer. Training losses (L1 + perceptual + adaptive GAN) are
the trainer's; ``forward`` returns what they need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from semtok.errors import SemtokError
from semtok.nn.conv import ConvDecoder, ConvEncoder
from semtok.quantizers.vector_quantizer import VectorQuantizer
from semtok.tokenizers.base import Tokenizer, eval_mode, register_tokenizer
from semtok.tokenizers.conv_config import ConvNetConfig, upgrade_legacy_conv
from semtok.tokenizers.vq_config import (
    CVQQuantizerConfig,
    VQGANQuantizerConfig,
    check_quantizer,
    upgrade_legacy_quantizer,
)


@dataclass
class ConvAutoencoderConfig:
    """Conv encoder/decoder architecture shared by the pixel tokenizers (VQGAN's 256 px defaults: f = 16)."""

    image_size: int = 256
    conv: ConvNetConfig = field(default_factory=ConvNetConfig)

    def __post_init__(self) -> None:
        self.conv.check("model.conv.")
        if self.image_size < 1:
            raise SemtokError(f"config key 'model.image_size': expected an int >= 1, got {self.image_size}")
        if self.image_size % self.factor:
            raise SemtokError(
                f"config key 'model.image_size': {self.image_size} is not divisible by the downsampling factor "
                f"{self.factor} (2 ** (len(channel_mult) - 1) for model.conv.channel_mult "
                f"{list(self.conv.channel_mult)})"
            )

    @classmethod
    def upgrade_legacy(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """The ``model`` mapping of a folder saved before the sections (flat conv keys) in today's shape."""
        return upgrade_legacy_conv(raw)

    @property
    def factor(self) -> int:
        """Downsampling factor f: pixels per token side."""
        return 2 ** (len(self.conv.channel_mult) - 1)


@dataclass
class VQGANConfig(ConvAutoencoderConfig):
    """VQGAN: conv autoencoder + EMA vector quantizer (L2 distance, k-means init)."""

    quantizer: VQGANQuantizerConfig = field(default_factory=VQGANQuantizerConfig)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_quantizer(self.quantizer)

    @classmethod
    def upgrade_legacy(cls, raw: dict[str, Any]) -> dict[str, Any]:
        """The ``model`` mapping of a folder saved before the sections (flat conv and quantizer keys) in
        today's shape."""
        return upgrade_legacy_quantizer(upgrade_legacy_conv(raw))


@dataclass
class CVQConfig(VQGANConfig):
    """CVQ-VAE: as VQGAN, with cosine distance and re-seeding of codes unused for ``quantizer.dead_code_steps`` steps."""

    quantizer: CVQQuantizerConfig = field(default_factory=CVQQuantizerConfig)


class ConvQuantTokenizer(Tokenizer):
    """Conv encoder -> 1x1 conv -> quantizer -> 1x1 conv -> conv decoder. Subclasses build the quantizer.

    The quantizer takes ``[B, h, w, code_dim]``, returns ``(quantized, ids, aux)`` and has ``lookup(ids)``.
    """

    def __init__(self, config: ConvAutoencoderConfig) -> None:
        super().__init__(config)
        self.encoder = ConvEncoder(3, **config.conv.kwargs(config.image_size))
        self.quantizer = self.build_quantizer(config)
        code_dim = self.quantizer.code_dim
        self.quant_conv = nn.Conv2d(config.conv.z_channels, code_dim, 1)
        self.post_quant_conv = nn.Conv2d(code_dim, config.conv.z_channels, 1)
        self.decoder = ConvDecoder(3, **config.conv.kwargs(config.image_size))

    def build_quantizer(self, config: ConvAutoencoderConfig) -> nn.Module:
        raise NotImplementedError

    @property
    def num_codes(self) -> int:
        return self.quantizer.num_codes

    @property
    def grid_size(self) -> tuple[int, int]:
        side = self.config.image_size // self.config.factor
        return side, side

    @property
    def last_layer(self) -> nn.Parameter:
        """The decoder's final convolution weight (for :func:`~semtok.nn.discriminator.adaptive_gan_weight`)."""
        return self.decoder.last_layer

    def _check_images(self, images_B3HW: torch.Tensor) -> None:
        factor = self.config.factor
        if images_B3HW.ndim != 4 or images_B3HW.shape[1] != 3:
            raise SemtokError(f"images must be [B, 3, H, W], got {list(images_B3HW.shape)}")
        if images_B3HW.shape[-1] % factor or images_B3HW.shape[-2] % factor:
            raise SemtokError(
                f"image size {tuple(images_B3HW.shape[-2:])} is not a multiple of the tokenizer's factor {factor}"
            )

    def latents(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """Pre-quantization code vectors ``[B, h, w, code_dim]`` of images ``[B, 3, H, W]`` in [-1, 1]."""
        self._check_images(images_B3HW)
        return self.quant_conv(self.encoder(images_B3HW)).permute(0, 2, 3, 1)

    def decode_codes(self, codes_BhwD: torch.Tensor) -> torch.Tensor:
        """Code vectors ``[B, h, w, code_dim]`` -> images ``[B, 3, h*f, w*f]`` (unclamped, differentiable)."""
        z = self.post_quant_conv(codes_BhwD.permute(0, 3, 1, 2).to(self.post_quant_conv.weight.dtype))
        return self.decoder(z)

    def forward(self, images_B3HW: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Training pass.

        Args:
            images_B3HW: float images in [-1, 1], H and W multiples of f.

        Returns:
            ``recon_B3HW`` (unclamped, the input's dtype or the autocast dtype), ``ids_BHW`` int64 in
            ``[0, num_codes)`` of shape ``[B, H/f, W/f]``, and the quantizer's ``aux`` (``aux["loss"]`` is its
            commitment term, to be added to the reconstruction losses). In training mode a vector
            quantizer updates its codebook here (k-means init on the first call, EMA, restarts).
        """
        quantized_BhwD, ids_BHW, aux = self.quantizer(self.latents(images_B3HW))
        return self.decode_codes(quantized_BhwD), ids_BHW, aux

    @torch.no_grad()
    def encode(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` float in [-1, 1] -> token ids ``[B, H/f, W/f]`` int64 in ``[0, num_codes)``.

        Never changes the codebook, even in training mode.
        """
        with eval_mode(self.quantizer):
            _, ids_BHW, _ = self.quantizer(self.latents(images_B3HW))
        return ids_BHW

    @torch.no_grad()
    def decode(self, ids_BHW: torch.Tensor) -> torch.Tensor:
        """Token ids ``[B, h, w]`` int64 -> images ``[B, 3, h*f, w*f]`` float32 in [-1, 1] (clamped)."""
        if ids_BHW.ndim != 3:
            raise SemtokError(f"token ids must be [B, h, w], got {list(ids_BHW.shape)}")
        if ids_BHW.numel() and (int(ids_BHW.min()) < 0 or int(ids_BHW.max()) >= self.num_codes):
            raise SemtokError(
                f"token ids must lie in [0, {self.num_codes}), got {int(ids_BHW.min())}..{int(ids_BHW.max())}"
            )
        codes = self.quantizer.lookup(ids_BHW.to(self.post_quant_conv.weight.device))
        return self.decode_codes(codes).float().clamp(-1.0, 1.0)


@register_tokenizer
class VQGANTokenizer(ConvQuantTokenizer):
    """VQGAN: conv autoencoder with an EMA vector quantizer (see :class:`VQGANConfig`)."""

    kind = "vqgan"
    config_class = VQGANConfig

    def build_quantizer(self, config: VQGANConfig) -> VectorQuantizer:
        return VectorQuantizer.from_config(config.quantizer)


@register_tokenizer
class CVQTokenizer(VQGANTokenizer):
    """CVQ-VAE: VQGAN with cosine distance and re-seeding of rarely used codes (see :class:`CVQConfig`)."""

    kind = "cvq"
    config_class = CVQConfig
