"""Pixel decoder for feature tokenizers (VQ-KD, Cluster): quantized code vectors -> images.

code tokens [B, h*w, code_dim] -> 1x1 conv to z_channels -> VQGAN ConvDecoder -> images [B, 3, H, W].
The tokenizer's encoder and quantizer stay frozen; the decoder is trained with MSE + perceptual + GAN
losses (the trainer's business).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from semtok.errors import SemtokError
from semtok.nn.conv import ConvDecoder
from semtok.tokenizers.conv_config import DecoderConvConfig


@dataclass
class PixelDecoderConfig:
    """Architecture of a pixel decoder.

    ``len(conv.channel_mult) - 1`` upsamplings by 2 must map the token ``grid`` to ``image_size``
    (``grid * 2 ** (len(channel_mult) - 1) == image_size``), e.g. grid 16 -> 256 px with 5 entries,
    grid 8 -> 32 px with 3 (checked by :meth:`check_grid` when a :class:`PixelDecoder` is built, so a run
    config may leave ``grid``, ``image_size`` and ``code_dim`` for the tokenizer to fill in). Attention runs at decoder levels whose side is in ``conv.attn_resolutions``.
    """

    code_dim: int = 32
    grid: int = 16
    image_size: int = 256
    conv: DecoderConvConfig = field(default_factory=DecoderConvConfig)

    def __post_init__(self) -> None:
        for key in ("code_dim", "grid", "image_size"):
            if getattr(self, key) < 1:
                raise SemtokError(
                    f"config key 'pixel_decoder.{key}': expected an int >= 1, got {getattr(self, key)}"
                )
        self.conv.check("pixel_decoder.conv.")

    def check_grid(self) -> None:
        """Raise a SemtokError unless the upsamplings map ``grid`` to ``image_size``.

        Not run by ``__post_init__``: a run config may give the architecture before the tokenizer fills in
        ``grid``, ``image_size`` and ``code_dim``; :class:`PixelDecoder` checks when it is built.
        """
        upsamplings = len(self.conv.channel_mult) - 1
        if self.grid * 2**upsamplings != self.image_size:
            ratio = self.image_size / self.grid
            if ratio >= 1 and ratio.is_integer() and math.log2(ratio).is_integer():
                hint = f"use a channel_mult of {int(math.log2(ratio)) + 1} entries"
            else:
                hint = "image_size / grid must be a power of two"
            raise SemtokError(
                f"pixel decoder: conv.channel_mult {list(self.conv.channel_mult)} upsamples {upsamplings} times "
                f"(x{2**upsamplings}), which maps a {self.grid}x{self.grid} token grid to "
                f"{self.grid * 2**upsamplings} px, not image_size {self.image_size}: {hint}"
            )


class PixelDecoder(nn.Module):
    """Code vectors of a token grid -> images.

    Input: ``codes_BND`` ``[B, h*w, code_dim]`` in raster order (what VQ-KD's and Cluster's quantizers
    return) with ``grid_hw = (h, w)`` (default ``(grid, grid)``), or a map ``[B, code_dim, h, w]``.
    Output: ``[B, 3, h*f, w*f]`` with ``f = image_size / grid``, unclamped (trained towards [-1, 1];
    clamp for display), in the parameters' dtype or the autocast dtype.
    """

    def __init__(self, config: PixelDecoderConfig) -> None:
        super().__init__()
        config.check_grid()
        self.config = config
        self.proj = nn.Conv2d(config.code_dim, config.conv.z_channels, 1)
        self.decoder = ConvDecoder(3, **config.conv.kwargs(config.image_size))

    @property
    def last_layer(self) -> nn.Parameter:
        """The final convolution's weight (for the adaptive GAN weight)."""
        return self.decoder.last_layer

    def forward(self, codes: torch.Tensor, grid_hw: tuple[int, int] | None = None) -> torch.Tensor:
        code_dim = self.config.code_dim
        if codes.ndim == 3 and codes.shape[-1] == code_dim:
            h, w = grid_hw if grid_hw is not None else (self.config.grid, self.config.grid)
            if h * w != codes.shape[1]:
                raise SemtokError(
                    f"pixel decoder: {codes.shape[1]} tokens do not fill a {h}x{w} grid (pass grid_hw)"
                )
            codes_BDhw = codes.transpose(1, 2).reshape(codes.shape[0], code_dim, h, w)
        elif codes.ndim == 4 and codes.shape[1] == code_dim:
            codes_BDhw = codes
        else:
            raise SemtokError(
                f"pixel decoder expects codes [B, h*w, {code_dim}] or [B, {code_dim}, h, w], got {list(codes.shape)}"
            )
        return self.decoder(self.proj(codes_BDhw.to(self.proj.weight.dtype)))
