"""Build a Cluster tokenizer offline: teacher patch features -> memory-mapped file -> spherical k-means.

``semtok build cluster`` (or :func:`build_cluster_tokenizer`) writes into ``OUT``:

- ``features.npy``: every patch feature of the (sub-sampled) images, ``[images * h * w, C]`` float32 in raster
  order per image, written batch by batch into a memory-mapped ``.npy`` (``np.load(path, mmap_mode="r")``),
  so memory stays bounded whatever the number of vectors (a million 768-d vectors is a 3 GB file);
- ``tokenizer/``: ``config.json`` + ``model.safetensors`` (the frozen teacher and the unit-norm centroids);
- ``config.yaml`` (the resolved run config) and ``summary.json``.

k-means: faiss ``Kmeans(spherical=True)`` on l2-normalised features (for unit vectors the L2 assignment is the
cosine one; centroids are re-normalised every iteration). Initialisation is faiss's: ``K`` distinct random
training vectors drawn under ``seed``; faiss re-splits a cluster that goes empty during the iterations.
It trains on at most ``max_points`` vectors (a seeded random subset, default 256 per code, faiss's own
default); the final assignment pass then scores every stored vector against the centroids, and any code that
gets no vector there is re-seeded from a random feature (one that is not alone in its cluster and not already a
centroid), repeated until every code is used or no candidate is left: no dead codes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from semtok.config import to_dict
from semtok.data import build_dataset
from semtok.data.config import DataConfig
from semtok.errors import SemtokError
from semtok.teachers.base import Teacher
from semtok.teachers.config import build_resolved_teacher
from semtok.tokenizers.cluster import ClusterConfig, ClusterTokenizer

FEATURES_FILE = "features.npy"


@dataclass
class ClusterBuildConfig:
    """How the offline build runs (the codebook's own settings live in ``model``)."""

    split: str = "train"
    max_images: int = 0  # 0: every image of the split; else a seeded random subset of this many
    batch_size: int = 64
    num_workers: int = 0
    seed: int = 0  # image subset, k-means initialisation and sample, re-seeding
    max_points: int = 0  # vectors k-means trains on; 0: 256 per code (faiss's default)
    keep_features: bool = True  # keep OUT/features.npy after the build
    device: str = "auto"  # auto | cpu | cuda (teacher and assignment pass; faiss-cpu clusters on the CPU)

    def __post_init__(self) -> None:
        if self.split not in ("train", "val", "all"):
            raise SemtokError(f"config key 'build.split': expected train, val or all, got {self.split!r}")
        for key in ("max_images", "num_workers", "max_points"):
            if getattr(self, key) < 0:
                raise SemtokError(f"config key 'build.{key}': expected an int >= 0, got {getattr(self, key)}")
        if self.batch_size < 1:
            raise SemtokError(f"config key 'build.batch_size': expected an int >= 1, got {self.batch_size}")


@dataclass
class ClusterRunConfig:
    """Everything ``semtok build cluster`` needs; the YAML file has these three sections."""

    model: ClusterConfig = field(default_factory=ClusterConfig)
    build: ClusterBuildConfig = field(default_factory=ClusterBuildConfig)
    data: DataConfig = field(default_factory=DataConfig)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise SemtokError(f"config key 'build.device': expected auto, cpu or cuda, got {name!r}") from None


@torch.no_grad()
def extract_features(
    teacher: Teacher,
    dataset: Any,
    out_path: str | os.PathLike,
    max_images: int = 0,
    batch_size: int = 64,
    progress: bool = True,
    seed: int = 0,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
) -> np.memmap:
    """Teacher patch features of ``dataset`` (all, or a seeded random ``max_images`` subset in index order)
    written batch by batch to the ``.npy`` file ``out_path``.

    Returns the file opened read-only as a memmap ``[images * h * w, C]`` float32 (rows in raster order per
    image). The file is written under a temporary name and renamed when complete.
    """
    total = len(dataset)
    if total == 0:
        raise SemtokError("the data set holds no images")
    count = total if not max_images or max_images >= total else max_images
    indices = np.arange(total)
    if count < total:
        indices = np.sort(np.random.default_rng(seed).choice(total, count, replace=False))
    side = int(teacher.grid_size)
    cells, dim = side * side, int(teacher.feature_dim)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.stem + ".partial.npy")
    features = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float32, shape=(count * cells, dim))
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, indices.tolist()),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
    )
    teacher = teacher.to(device)
    row = 0
    with tqdm(
        total=count, desc="teacher features", unit="img", disable=not progress, dynamic_ncols=True
    ) as bar:
        for images, _ in loader:
            maps = teacher(images.to(device))
            if maps.shape[-2:] != (side, side):
                raise SemtokError(f"teacher gave a {tuple(maps.shape[-2:])} grid, expected {side}x{side}")
            rows = maps.permute(0, 2, 3, 1).reshape(-1, dim).cpu().numpy()
            features[row : row + rows.shape[0]] = rows
            row += rows.shape[0]
            bar.update(images.shape[0])
    features.flush()
    del features
    os.replace(partial, out_path)
    return np.load(out_path, mmap_mode="r")


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _gather(features: np.ndarray, indices: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Rows ``indices`` (sorted) of a (memory-mapped) array, l2-normalised, in memory, chunk by chunk."""
    out = np.empty((len(indices), features.shape[1]), np.float32)
    for start in range(0, len(indices), chunk):
        out[start : start + chunk] = _normalize_rows(np.asarray(features[indices[start : start + chunk]]))
    return out


def spherical_kmeans(
    features: np.ndarray, num_codes: int, iters: int = 20, seed: int = 0, max_points: int = 0
) -> tuple[np.ndarray, dict[str, Any]]:
    """Spherical k-means (faiss) of the rows of ``features`` (``[N, C]``, e.g. a memmap; normalised here).

    Trains on a seeded random subset of ``max_points`` rows (0: ``256 * num_codes``), gathered into memory;
    initialisation: ``num_codes`` distinct random training rows (faiss, under ``seed``).

    Returns ``(centroids [K, C] float32 unit rows, info)`` with info ``points`` (rows trained on) and
    ``objective`` (faiss's final objective).
    """
    import faiss

    n, dim = features.shape
    if n < num_codes:
        raise SemtokError(
            f"k-means: {n} feature vectors for {num_codes} codes; use more images or a smaller --codebook-size"
        )
    if iters < 1:
        raise SemtokError(f"k-means: iterations must be >= 1, got {iters}")
    limit = max_points or 256 * num_codes
    points = max(min(n, limit), num_codes)
    rows = np.arange(n)
    if points < n:
        rows = np.sort(np.random.default_rng(seed).choice(n, points, replace=False))
    sample = _gather(features, rows)
    kmeans = faiss.Kmeans(
        dim,
        num_codes,
        niter=iters,
        spherical=True,
        seed=seed,
        max_points_per_centroid=math.ceil(points / num_codes) + 1,  # we sub-sampled already
        min_points_per_centroid=1,  # no warning for small data sets
        verbose=False,
    )
    kmeans.train(sample)
    centroids = _normalize_rows(np.asarray(kmeans.centroids, dtype=np.float32).reshape(num_codes, dim))
    objective = float(kmeans.obj[-1]) if len(kmeans.obj) else float("nan")
    return centroids.astype(np.float32), {"points": int(points), "objective": objective}


@torch.no_grad()
def assign_features(
    features: np.ndarray,
    centroids: np.ndarray,
    device: str | torch.device = "cpu",
    chunk: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest centroid by cosine for every row of ``features`` (read chunk by chunk).

    Returns ``(ids [N] int64, cosine [N] float32 to the assigned centroid, counts [K] int64)``.
    """
    n, k = features.shape[0], centroids.shape[0]
    chunk = chunk or max(1, min(65536, 2**25 // k))
    codes_CK = torch.from_numpy(np.ascontiguousarray(centroids)).to(device).t()
    ids = np.empty(n, np.int64)
    cosine = np.empty(n, np.float32)
    for start in tqdm(range(0, n, chunk), desc="assign", disable=not progress, leave=False):
        x = torch.from_numpy(_normalize_rows(np.asarray(features[start : start + chunk]))).to(device)
        scores = x @ codes_CK
        best = scores.argmax(dim=1)
        ids[start : start + x.shape[0]] = best.cpu().numpy()
        cosine[start : start + x.shape[0]] = scores.gather(1, best[:, None])[:, 0].cpu().numpy()
    return ids, cosine, np.bincount(ids, minlength=k).astype(np.int64)


def reseed_empty_codes(
    features: np.ndarray,
    centroids: np.ndarray,
    seed: int = 0,
    device: str | torch.device = "cpu",
    max_rounds: int = 10,
    progress: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Final assignment pass over every row; codes with no row are re-seeded from random rows.

    Candidates are rows whose cluster has other rows and that are not (numerically) on their centroid, so a
    re-seed never empties another code or duplicates one; the pass repeats (at most ``max_rounds``) until
    every code has a row. Returns ``(centroids, info)``: ``reseeded`` (codes re-seeded), ``empty_after``
    (codes still without a row: only when there are too few distinct features), ``counts``, ``mean_cosine``.
    """
    rng = np.random.default_rng(seed + 1)
    centroids = centroids.copy()
    reseeded = 0
    ids, cosine, counts = assign_features(features, centroids, device, progress=progress)
    for _ in range(max_rounds):
        empty = np.flatnonzero(counts == 0)
        if empty.size == 0:
            break
        eligible = np.flatnonzero((counts[ids] >= 2) & (cosine < 1.0 - 1e-5))
        if eligible.size == 0:
            break
        picks = np.sort(rng.choice(eligible, min(empty.size, eligible.size), replace=False))
        centroids[empty[: picks.size]] = _gather(features, picks)
        reseeded += int(picks.size)
        ids, cosine, counts = assign_features(features, centroids, device, progress=progress)
    info = {
        "reseeded": reseeded,
        "empty_after": int((counts == 0).sum()),
        "counts": counts,
        "mean_cosine": float(cosine.mean()),
    }
    return centroids, info


def build_cluster_tokenizer(
    config: ClusterRunConfig, out_dir: str | os.PathLike, progress: bool = True
) -> dict[str, Any]:
    """Build a Cluster tokenizer into ``out_dir`` (see the module docstring); returns the summary."""
    out_dir = Path(out_dir)
    model, build, data = config.model, config.build, config.data
    if (out_dir / "tokenizer" / "model.safetensors").exists():
        raise SemtokError(f"'{out_dir}' already holds a built tokenizer: choose another output folder")
    started = time.time()
    device = resolve_device(build.device)
    teacher, teacher_config = build_resolved_teacher(model.teacher)
    # the resolved values go into this build's own copy (saved below), never into the caller's config
    model = dataclasses.replace(model, teacher=teacher_config, kmeans_seed=build.seed)
    config = dataclasses.replace(config, model=model)
    dataset = build_dataset(
        data.dataset,
        build.split,
        model.image_size,
        augment=data.augment,
        crop_scale=data.crop_scale,
        seed=build.seed,
        labels=data.labels,
    )
    if len(dataset) == 0:
        raise SemtokError(f"dataset {data.dataset!r}: the {build.split} split holds no images")

    import yaml

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(
        yaml.safe_dump({"kind": "cluster", **to_dict(config)}, sort_keys=False)
    )

    features_path = out_dir / FEATURES_FILE
    features = extract_features(
        teacher,
        dataset,
        features_path,
        build.max_images,
        build.batch_size,
        progress,
        build.seed,
        device,
        build.num_workers,
    )
    extracted = time.time()
    centroids, kmeans_info = spherical_kmeans(
        features, model.num_codes, model.kmeans_iters, build.seed, build.max_points
    )
    clustered = time.time()
    centroids, assign_info = reseed_empty_codes(features, centroids, build.seed, device, progress=progress)
    assigned = time.time()

    tokenizer = ClusterTokenizer(model, teacher=teacher.cpu())
    tokenizer.quantizer.set_codebook(torch.from_numpy(centroids))
    tokenizer.eval().save_pretrained(out_dir / "tokenizer")
    side = int(teacher.grid_size)
    vectors, dim = features.shape
    del features
    if not build.keep_features:
        features_path.unlink()
    counts = assign_info["counts"]
    summary = {
        "kind": "cluster",
        "teacher": model.teacher.name,
        "teacher_weights": getattr(teacher, "weights_source", model.teacher.weights),
        "images": vectors // (side * side),
        "grid": [side, side],
        "vectors": int(vectors),
        "feature_dim": int(dim),
        "num_codes": model.num_codes,
        "kmeans": {
            "backend": "faiss spherical k-means",
            "iterations": model.kmeans_iters,
            "seed": build.seed,
            "init": "distinct random training vectors (faiss)",
            "points": kmeans_info["points"],
            "objective": kmeans_info["objective"],
        },
        "empty_codes_reseeded": assign_info["reseeded"],
        "empty_codes_left": assign_info["empty_after"],
        "codes_used": int((counts > 0).sum()),
        "min_code_count": int(counts.min()),
        "mean_cosine_to_centroid": assign_info["mean_cosine"],
        "seconds": {
            "features": round(extracted - started, 2),
            "kmeans": round(clustered - extracted, 2),
            "assign": round(assigned - clustered, 2),
            "total": round(time.time() - started, 2),
        },
        "device": str(device),
        "features": str(features_path) if build.keep_features else None,
        "tokenizer": str(out_dir / "tokenizer"),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
