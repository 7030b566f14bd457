"""Pixel metrics: uint8 quantisation, PSNR and SSIM, all computed on the images as they would be saved.

Images are torch tensors ``[B, 3, H, W]``: either uint8 in 0..255, or floating point in [-1, 1] (the semtok
convention), which are first quantised with :func:`to_uint8`. Both metrics then work in float64 on
``uint8 / 255`` (data range 1) and are computed per image, then averaged over images (``reduction="mean"``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from semtok.errors import SemtokError

Reduction = Literal["mean", "none"]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] (any shape) -> uint8 in 0..255: ``floor((x + 1) * 127.5 + 0.5)``, clamped.

    That is rounding half up in float64, the same values as LlamaGen's ``clamp(127.5 * x + 128, 0, 255)`` cast
    and torchvision's ``save_image``; out-of-range values (decoders overshoot) are clamped, NaN becomes 0.
    A uint8 tensor is returned unchanged.
    """
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise SemtokError(f"images: expected uint8 or floating point in [-1, 1], got {images.dtype}")
    scaled = torch.nan_to_num(images.detach().double(), nan=-1.0)
    return torch.floor((scaled + 1.0) * 127.5 + 0.5).clamp_(0, 255).to(torch.uint8)


def _unit_pair(a: torch.Tensor, b: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Two image batches -> float64 [B, 3, H, W] in [0, 1] after uint8 quantisation; shapes must agree."""
    if a.shape != b.shape:
        raise SemtokError(
            f"{name}: the two image batches differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}"
        )
    if a.dim() != 4:
        raise SemtokError(f"{name}: expected images [B, C, H, W], got shape {tuple(a.shape)}")
    return to_uint8(a).double().cpu() / 255.0, to_uint8(b).double().cpu() / 255.0


def _reduce(values: torch.Tensor, reduction: Reduction) -> float | torch.Tensor:
    if reduction == "none":
        return values
    if reduction == "mean":
        return float(values.mean())
    raise SemtokError(f"reduction: expected 'mean' or 'none', got {reduction!r}")


def psnr(a: torch.Tensor, b: torch.Tensor, reduction: Reduction = "mean") -> float | torch.Tensor:
    """Peak signal-to-noise ratio in dB, per image ``10 log10(1 / MSE)`` on [0, 1] values after uint8 quantisation.

    Args:
        a, b: images [B, C, H, W], uint8 or float in [-1, 1].
        reduction: "mean" -> float (mean of the per-image PSNRs), "none" -> float64 tensor [B].

    Identical images give ``inf`` (as ``skimage.metrics.peak_signal_noise_ratio``), so the mean is ``inf`` when
    any pair is identical; use ``reduction="none"`` to treat those yourself.
    """
    x, y = _unit_pair(a, b, "psnr")
    mse = (x - y).pow(2).flatten(1).mean(1)
    values = torch.where(mse > 0, 10.0 * torch.log10(1.0 / mse), torch.full_like(mse, math.inf))
    return _reduce(values, reduction)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """Normalised 1-D Gaussian [size] float64, ``exp(-d^2 / (2 sigma^2))`` for d = -(size//2)..size//2."""
    d = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    w = torch.exp(-(d**2) / (2 * sigma**2))
    return w / w.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, reduction: Reduction = "mean") -> float | torch.Tensor:
    """Structural similarity (Wang et al. 2004), per image, on [0, 1] values after uint8 quantisation.

    Gaussian window 11 x 11 with sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1, population (not sample)
    covariances; the SSIM map is kept where the whole window fits inside the image (5 pixels cropped at each
    border), averaged over those pixels and over the channels. This equals
    ``skimage.metrics.structural_similarity(x, y, channel_axis=-1, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1)`` on HWC images (tested to 1e-4). Images must be at least 11 x 11.

    Args:
        a, b: images [B, C, H, W], uint8 or float in [-1, 1].
        reduction: "mean" -> float in [-1, 1] (1 for identical images), "none" -> float64 tensor [B].
    """
    x, y = _unit_pair(a, b, "ssim")
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise SemtokError(
            f"ssim: images must be at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(x.shape[-2:])}"
        )
    channels = x.shape[1]
    w = gaussian_window()
    kernel = (w[:, None] * w[None, :]).expand(channels, 1, SSIM_WINDOW, SSIM_WINDOW).contiguous()

    def blur(t: torch.Tensor) -> torch.Tensor:  # valid convolution == skimage's filter then border crop
        return F.conv2d(t, kernel, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    smap = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return _reduce(smap.flatten(1).mean(1), reduction)
