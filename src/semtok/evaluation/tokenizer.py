"""Evaluate a trained tokenizer on a data split: codebook usage, perplexity, teacher-feature similarity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from semtok.data import build_dataset
from semtok.errors import SemtokError
from semtok.evaluation.common import evenly_spaced, fid_reference, iterate_batches
from semtok.hub.pretrained import resolve_model_dir
from semtok.metrics.codebook import code_histogram, codebook_stats
from semtok.teachers.base import teacher_targets
from semtok.tokenizers.base import Tokenizer, has_pixel_decoder


@torch.no_grad()
def evaluate_tokenizer(
    path: str | Path,
    data: str = "mnist5k",
    split: str = "val",
    batch_size: int = 128,
    teacher_weights: str | None = None,
    progress: bool = True,
    fid: bool = True,
    inception_weights: str | None = None,
    lpips_weights: str | None = None,
    limit: int | None = None,
    labels: str = "auto",
) -> dict[str, Any]:
    """Metrics of the tokenizer at ``path`` on ``data``/``split`` (``limit``: an evenly spaced subset of that many
    images, see :func:`evenly_spaced`; the rFID reference is the same subset; ``labels``: how an image folder's
    labels are read, see :func:`~semtok.data.build.build_dataset`).

    Always: codebook usage and perplexity. VQ-KD: cosine similarity of decoded features to the teacher's;
    Cluster: cosine similarity of each token's centroid to the teacher feature it stands for.
    With a pixel decoder: PSNR, SSIM, LPIPS (when its backbone weights are present) and rFID of the
    reconstructions against the same split's originals (TF-Inception pool3; the reference statistics are cached).
    """
    if batch_size < 1:
        raise SemtokError(f"batch_size: expected an int >= 1, got {batch_size}")
    tokenizer_dir = resolve_model_dir(path, "tokenizer")
    tokenizer = Tokenizer.from_pretrained(tokenizer_dir)
    image_size = tokenizer.config.image_size
    dataset = evenly_spaced(build_dataset(data, split, image_size, augment="none", labels=labels), limit)
    counts = torch.zeros(tokenizer.num_codes, dtype=torch.long)
    results: dict[str, Any] = {
        "tokenizer": str(tokenizer_dir),
        "kind": tokenizer.kind,
        "data": data,
        "split": split,
        "labels": labels,
        "images": len(dataset),
        "num_codes": tokenizer.num_codes,
        "grid": list(tokenizer.grid_size),
    }
    teacher = None
    if tokenizer.kind == "vqkd":
        import dataclasses

        from semtok.teachers.config import build_teacher_from_config

        teacher_config = tokenizer.config.teacher
        if teacher_weights is not None:
            teacher_config = dataclasses.replace(teacher_config, weights=teacher_weights)
        results["teacher"] = teacher_config.name
        try:
            teacher = build_teacher_from_config(teacher_config)
        except SemtokError as error:
            if teacher_weights is not None or "imported_from" not in tokenizer.info:
                raise
            # an imported tokenizer names the original's teacher, whose weights may not be here
            results["teacher_cosine_skipped"] = f"teacher {teacher_config.name!r} unavailable: {error}"
    elif tokenizer.kind == "cluster":
        results["teacher"] = tokenizer.config.teacher.name  # its own frozen copy, inside the tokenizer folder
    run_summary = tokenizer_dir.parent / "summary.json"
    if run_summary.exists():
        perceptual = json.loads(run_summary.read_text()).get("perceptual_loss")
        if perceptual:
            results["perceptual_loss_in_training"] = perceptual
    pixels = has_pixel_decoder(tokenizer)
    lpips_model = None
    if pixels:
        from semtok.metrics import load_lpips

        lpips_model, lpips_note = load_lpips("vgg", lpips_weights)
        results["lpips_model"] = lpips_note
    cosine_sum, tokens = 0.0, 0
    pixel_sums = {"psnr": 0.0, "ssim": 0.0, "lpips": 0.0}
    recon_chunks: list[torch.Tensor] = []
    for images, _ in iterate_batches(dataset, batch_size, progress, f"evaluate {split}"):
        if tokenizer.kind == "cluster":  # one teacher pass for the ids and the cosine to the centroids
            features = tokenizer.features(images)
            ids = tokenizer.assign(features)
            cosine = F.cosine_similarity(tokenizer.decode_features(ids), features, dim=1)
            cosine_sum += float(cosine.sum())
            tokens += cosine.numel()
        else:
            ids = tokenizer.encode(images)
        counts += code_histogram(ids, tokenizer.num_codes)
        if teacher is not None:
            decoded = tokenizer.decode_features(ids)
            cosine = F.cosine_similarity(
                decoded.float(), teacher_targets(teacher, images, tokenizer.grid_size), dim=1
            )
            cosine_sum += float(cosine.sum())
            tokens += cosine.numel()
        if pixels:
            from semtok.metrics import lpips_distance, psnr, ssim, to_uint8

            recon = tokenizer.decode(ids)
            pixel_sums["psnr"] += float(psnr(images, recon, reduction="none").sum())
            pixel_sums["ssim"] += float(ssim(images, recon, reduction="none").sum())
            if lpips_model is not None:
                pixel_sums["lpips"] += float(lpips_distance(lpips_model, images, recon).sum())
            recon_chunks.append(to_uint8(recon))
    results.update(codebook_stats(counts))
    if teacher is not None or tokenizer.kind == "cluster":
        results["teacher_cosine"] = cosine_sum / max(tokens, 1)
    if pixels:
        results["psnr"] = pixel_sums["psnr"] / len(dataset)
        results["ssim"] = pixel_sums["ssim"] / len(dataset)
        if lpips_model is not None:
            results["lpips"] = pixel_sums["lpips"] / len(dataset)
        if fid:
            results.update(
                reconstruction_fid(
                    dataset, data, split, image_size, recon_chunks, inception_weights, progress, limit, labels
                )
            )
    return results


def reconstruction_fid(
    dataset: Any,
    data: str,
    split: str,
    image_size: int,
    recon_chunks: list[torch.Tensor],
    inception_weights: str | None,
    progress: bool,
    limit: int | None = None,
    labels: str = "auto",
) -> dict[str, Any]:
    """rFID: reconstructions (uint8 chunks) against the cached statistics of the same split's originals
    (``dataset`` already cut to ``limit`` images by :func:`evenly_spaced`; ``limit`` and ``labels`` are part of
    the cache key)."""
    from semtok.metrics import InceptionFeatures, feature_stats, frechet_distance

    extractor = InceptionFeatures(weights=inception_weights)
    mu_ref, sigma_ref = fid_reference(
        dataset, data, split, image_size, extractor, limit, progress, labels=labels
    )
    features = extractor.extract(recon_chunks, progress=progress)
    mu, sigma = feature_stats(features)
    return {
        "rfid": frechet_distance(mu, sigma, mu_ref, sigma_ref),
        "fid_extractor": extractor.extractor_id,
        "fid_reference": f"{data} {split} originals ({len(dataset)} images, {image_size} px)",
    }
