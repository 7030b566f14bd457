"""Evaluation metrics: FID (TF-Inception pool3), Inception Score, improved precision / recall, PSNR, SSIM, LPIPS,
codebook statistics and the CLIP score (:class:`ClipScorer`, open_clip imported when one is built); the ADM
``.npz`` formats (:mod:`~semtok.metrics.image_batches`) and FID between folders / image batches / statistics
(:mod:`~semtok.metrics.fid_sources`).

Images are torch tensors [B, 3, H, W], uint8 or float in [-1, 1]; every metric quantises floats with
:func:`to_uint8` first, so it measures the images as they would be saved.
"""

from semtok.metrics.clip_score import ClipScorer
from semtok.metrics.codebook import code_histogram, codebook_stats
from semtok.metrics.fid import (
    default_cache_dir,
    feature_stats,
    fid_from_features,
    frechet_distance,
    load_stats,
    reference_features,
    reference_stats,
    save_stats,
)
from semtok.metrics.fid_sources import fid_between, source_statistics, source_stats
from semtok.metrics.image_batches import (
    iter_image_batch,
    read_image_batch,
    read_stats,
    write_sample_batch,
    write_stats,
)
from semtok.metrics.inception import InceptionFeatures, tf1_bilinear_resize
from semtok.metrics.inception_score import inception_score_from_logits, inception_score_report
from semtok.metrics.lpips_metric import load_lpips, lpips_distance
from semtok.metrics.pixel import psnr, ssim, to_uint8
from semtok.metrics.precision_recall import knn_radii, manifold_coverage, precision_recall

__all__ = [
    "ClipScorer",
    "InceptionFeatures",
    "code_histogram",
    "codebook_stats",
    "default_cache_dir",
    "feature_stats",
    "fid_between",
    "fid_from_features",
    "frechet_distance",
    "inception_score_from_logits",
    "inception_score_report",
    "iter_image_batch",
    "knn_radii",
    "load_lpips",
    "load_stats",
    "lpips_distance",
    "manifold_coverage",
    "precision_recall",
    "psnr",
    "read_image_batch",
    "read_stats",
    "reference_features",
    "reference_stats",
    "save_stats",
    "source_statistics",
    "source_stats",
    "ssim",
    "tf1_bilinear_resize",
    "to_uint8",
    "write_sample_batch",
    "write_stats",
]
