"""VQGAN-style convolutional encoder and decoder (ResNet blocks, GroupNorm + SiLU, optional self-attention).

``ConvEncoder``: images ``[B, 3, H, W]`` -> latents ``[B, z_channels, H / f, W / f]`` with
``f = 2 ** (len(channel_mult) - 1)`` (one stride-2 downsampling between consecutive levels).
``ConvDecoder``: latents ``[B, z_channels, h, w]`` -> images ``[B, 3, h * f, w * f]``, no final activation
(train it towards targets in [-1, 1]; clamp at inference).

Level ``i`` has ``channels * channel_mult[i]`` channels; self-attention runs after the ResNet blocks of every
level whose spatial side (computed from ``image_size``) is in ``attn_resolutions``; a mid block
(ResNet, attention, ResNet) sits at the lowest resolution of both networks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from semtok.errors import SemtokError


def group_norm(channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with the largest group count <= ``max_groups`` that divides ``channels`` (eps 1e-6)."""
    groups = max(g for g in range(1, min(max_groups, channels) + 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """``x + conv(silu(norm(conv(silu(norm(x))))))``; a 1x1 conv maps the skip when channels change."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x_BCHW)))
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x_BCHW) + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over all ``H * W`` positions, pre-norm, residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x_BCHW.shape
        qkv = self.qkv(self.norm(x_BCHW)).reshape(B, 3, C, H * W).transpose(-1, -2)  # [B, 3, HW, C]
        out_BNC = F.scaled_dot_product_attention(qkv[:, 0:1], qkv[:, 1:2], qkv[:, 2:3])[:, 0]
        return x_BCHW + self.proj(out_BNC.transpose(1, 2).reshape(B, C, H, W))


class Downsample(nn.Module):
    """Halve H and W: 3x3 stride-2 convolution after padding one pixel on the right and bottom."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2)

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x_BCHW, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Double H and W: nearest-neighbour upsampling then a 3x3 convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x_BCHW, scale_factor=2.0, mode="nearest"))


class MidBlock(nn.Module):
    """ResNet block, self-attention, ResNet block (channels unchanged)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block1 = ResnetBlock(channels, channels)
        self.attn = AttentionBlock(channels)
        self.block2 = ResnetBlock(channels, channels)

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        return self.block2(self.attn(self.block1(x_BCHW)))


class Level(nn.Module):
    """One resolution level: ResNet blocks, each followed by attention when enabled, then a resampler."""

    def __init__(
        self, in_channels: int, out_channels: int, num_blocks: int, attention: bool, resample: nn.Module
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            ResnetBlock(in_channels if i == 0 else out_channels, out_channels) for i in range(num_blocks)
        )
        self.attns = nn.ModuleList(
            AttentionBlock(out_channels) for _ in range(num_blocks if attention else 0)
        )
        self.resample = resample

    def forward(self, x_BCHW: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x_BCHW = block(x_BCHW)
            if self.attns:
                x_BCHW = self.attns[i](x_BCHW)
        return self.resample(x_BCHW)


def _check_args(channel_mult: Sequence[int], num_res_blocks: int, channels: int, image_size: int) -> int:
    """Validate the shared arguments; returns the downsampling factor f."""
    if len(channel_mult) < 1 or any(int(m) < 1 for m in channel_mult):
        raise SemtokError(f"channel_mult must be a non-empty list of positive ints, got {list(channel_mult)}")
    if num_res_blocks < 1 or channels < 1:
        raise SemtokError(f"num_res_blocks and channels must be >= 1, got {num_res_blocks}, {channels}")
    factor = 2 ** (len(channel_mult) - 1)
    if image_size % factor:
        raise SemtokError(
            f"image_size {image_size} is not divisible by the downsampling factor {factor} "
            f"(2 ** (len(channel_mult) - 1) with channel_mult {list(channel_mult)})"
        )
    return factor


class ConvEncoder(nn.Module):
    """Images ``[B, in_channels, H, W]`` (any float dtype, typically in [-1, 1]) -> ``[B, z_channels, H/f, W/f]``.

    ``f = 2 ** (len(channel_mult) - 1)``; H and W must be multiples of f. ``image_size`` only decides at
    which levels attention runs (those whose side ``image_size / 2**i`` is in ``attn_resolutions``).
    """

    def __init__(
        self,
        in_channels: int = 3,
        channels: int = 128,
        channel_mult: Sequence[int] = (1, 1, 2, 2, 4),
        num_res_blocks: int = 2,
        z_channels: int = 256,
        attn_resolutions: Sequence[int] = (),
        image_size: int = 256,
    ) -> None:
        super().__init__()
        self.factor = _check_args(channel_mult, num_res_blocks, channels, image_size)
        widths = [channels * int(m) for m in channel_mult]
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        levels = []
        previous, side = channels, image_size
        for i, width in enumerate(widths):
            last = i == len(widths) - 1
            resample = nn.Identity() if last else Downsample(width)
            levels.append(Level(previous, width, num_res_blocks, side in attn_resolutions, resample))
            previous, side = width, side if last else side // 2
        self.levels = nn.ModuleList(levels)
        self.mid = MidBlock(previous)
        self.norm_out = group_norm(previous)
        self.conv_out = nn.Conv2d(previous, z_channels, 3, padding=1)

    def forward(self, images_BCHW: torch.Tensor) -> torch.Tensor:
        H, W = images_BCHW.shape[-2:]
        if H % self.factor or W % self.factor:
            raise SemtokError(f"image size {(H, W)} is not a multiple of the encoder's factor {self.factor}")
        x = self.conv_in(images_BCHW)
        for level in self.levels:
            x = level(x)
        x = self.mid(x)
        return self.conv_out(F.silu(self.norm_out(x)))


class ConvDecoder(nn.Module):
    """Latents ``[B, z_channels, h, w]`` -> images ``[B, out_channels, h*f, w*f]`` (no final activation).

    Mirrors :class:`ConvEncoder`: a mid block at the lowest resolution, then the levels from the last
    ``channel_mult`` entry to the first, each with ``num_res_blocks + 1`` ResNet blocks and an upsampling
    (except the full-resolution level). ``last_layer`` is the final convolution's weight (for the
    adaptive GAN weight).
    """

    def __init__(
        self,
        out_channels: int = 3,
        channels: int = 128,
        channel_mult: Sequence[int] = (1, 1, 2, 2, 4),
        num_res_blocks: int = 2,
        z_channels: int = 256,
        attn_resolutions: Sequence[int] = (),
        image_size: int = 256,
    ) -> None:
        super().__init__()
        self.factor = _check_args(channel_mult, num_res_blocks, channels, image_size)
        widths = [channels * int(m) for m in channel_mult]
        previous, side = widths[-1], image_size // self.factor
        self.conv_in = nn.Conv2d(z_channels, previous, 3, padding=1)
        self.mid = MidBlock(previous)
        levels = []
        for i in reversed(range(len(widths))):
            resample = Upsample(widths[i]) if i > 0 else nn.Identity()
            levels.append(Level(previous, widths[i], num_res_blocks + 1, side in attn_resolutions, resample))
            previous, side = widths[i], side * 2 if i > 0 else side
        self.levels = nn.ModuleList(levels)
        self.norm_out = group_norm(previous)
        self.conv_out = nn.Conv2d(previous, out_channels, 3, padding=1)

    @property
    def last_layer(self) -> nn.Parameter:
        """Weight of the final convolution ``[out_channels, C, 3, 3]``."""
        return self.conv_out.weight

    def forward(self, z_BZhw: torch.Tensor) -> torch.Tensor:
        x = self.mid(self.conv_in(z_BZhw))
        for level in self.levels:
            x = level(x)
        return self.conv_out(F.silu(self.norm_out(x)))
