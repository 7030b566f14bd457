"""Evaluation metrics: FID (TF-Inception pool3), PSNR, SSIM, LPIPS and codebook statistics.

Images are torch tensors [B, 3, H, W], uint8 or float in [-1, 1]; every metric quantises floats with
:func:`to_uint8` first, so it measures the images as they would be saved.
"""

from semtok.metrics.codebook import code_histogram, codebook_stats
from semtok.metrics.fid import (
    default_cache_dir,
    feature_stats,
    fid_from_features,
    frechet_distance,
    load_stats,
    reference_stats,
    save_stats,
)
from semtok.metrics.inception import InceptionFeatures, tf1_bilinear_resize
from semtok.metrics.lpips_metric import load_lpips, lpips_distance
from semtok.metrics.pixel import psnr, ssim, to_uint8

__all__ = [
    "InceptionFeatures",
    "code_histogram",
    "codebook_stats",
    "default_cache_dir",
    "feature_stats",
    "fid_from_features",
    "frechet_distance",
    "load_lpips",
    "load_stats",
    "lpips_distance",
    "psnr",
    "reference_stats",
    "save_stats",
    "ssim",
    "tf1_bilinear_resize",
    "to_uint8",
]
