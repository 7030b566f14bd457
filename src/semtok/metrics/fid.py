"""Frechet Inception Distance: feature statistics, the Frechet distance, and a cache of reference statistics.

``FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrtm(S1 S2))`` on float64 means and covariances of 2048-d
TF-Inception pool3 features (see :mod:`semtok.metrics.inception`); the trace of the matrix square root from
symmetric eigendecompositions (:func:`frechet_distance`: pytorch-fid's value, several times faster).

Reference statistics are computed once per (data set, split, image size, extractor id[, image limit]) and stored
under the cache folder (``$SEMTOK_CACHE/fid`` if ``SEMTOK_CACHE`` is set, else ``~/.cache/semtok/fid``) as
``<name>.npz`` (arrays ``mu`` [D] and ``sigma`` [D, D], float64, loaded with ``allow_pickle=False``) next to
``<name>.json`` (the key, the number of images, the semtok version) and ``<name>.features.npy`` (the reference
features themselves, float32 [N, D]: precision / recall need them; 8 KB per image). One pass over the reference
images fills all three (:func:`reference_features`, which :func:`reference_stats` calls). A cache whose metadata
does not match the request is recomputed, never reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from semtok.errors import SemtokError

if TYPE_CHECKING:
    from semtok.metrics.inception import InceptionFeatures

KEY_FIELDS = ("dataset_id", "split", "image_size", "extractor_id", "limit")
FEATURES_EXT = ".features.npy"


def feature_stats(features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Features [N, D] (numpy or torch, N >= 2) -> (mu [D], sigma [D, D]) float64; sigma uses N - 1 (np.cov)."""
    feats = np.asarray(features.detach().cpu() if hasattr(features, "detach") else features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise SemtokError(f"FID: expected features [N, D] with N >= 2, got shape {feats.shape}")
    if not np.isfinite(feats).all():
        raise SemtokError("FID: features contain NaN or inf")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2), float64. Shapes: mu [D], sigma [D, D].

    ``tr(sqrtm(S1 S2))`` is computed from symmetric eigendecompositions: the eigenvalues of ``S1 S2`` are those of
    the symmetric ``sqrt(S1) S2 sqrt(S1)``, so ``tr sqrtm(S1 S2) = sum sqrt(eigvalsh(sqrt(S1) S2 sqrt(S1)))``
    (round-off negatives clipped to 0). That is the value pytorch-fid / torch-fidelity / the ADM evaluator get
    from ``scipy.linalg.sqrtm`` (agreement 1e-13 relative on well-conditioned 2048-d covariances, about 1e-7
    with fewer images than dimensions, where ``sqrtm`` of the singular product is the less accurate one), at a
    fifth to an eighth of its time on a CPU (two ``eigh`` of D x D instead of a non-symmetric Schur form).
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    dim = mu1.shape[0]
    if mu2.shape != (dim,) or sigma1.shape != (dim, dim) or sigma2.shape != (dim, dim):
        raise SemtokError(
            f"FID: statistics differ in shape: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}"
        )
    if not (np.isfinite(sigma1).all() and np.isfinite(sigma2).all()):
        raise SemtokError("FID: a covariance contains NaN or inf")
    values, vectors = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    inner = root1 @ sigma2 @ root1
    trace_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_covmean)


def fid_from_features(feats_a: Any, feats_b: Any) -> float:
    """FID between two feature sets [N, D] and [M, D] (numpy or torch)."""
    return frechet_distance(*feature_stats(feats_a), *feature_stats(feats_b))


def default_cache_dir() -> Path:
    """``$SEMTOK_CACHE/fid`` if the variable is set, else ``~/.cache/semtok/fid``."""
    root = os.environ.get("SEMTOK_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "semtok") / "fid"


def cache_name(key: dict[str, Any]) -> str:
    """File stem for a key: readable data set / split / size, plus a hash of the whole key."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{key['dataset_id']}_{key['split']}_{key['image_size']}px")
    return f"{readable.strip('-')[-80:]}_{digest}"


def _with_ext(stem: Path, ext: str) -> Path:
    """``stem`` + ``ext`` (not ``with_suffix``: the stem may contain dots)."""
    return stem.with_name(stem.name + ext)


def save_stats(path_stem: Path, mu: np.ndarray, sigma: np.ndarray, metadata: dict[str, Any]) -> None:
    """Write ``<stem>.npz`` (mu, sigma) then ``<stem>.json`` (metadata), each atomically (temp file + rename)."""
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    npz, meta = _with_ext(path_stem, ".npz"), _with_ext(path_stem, ".json")
    tmp = _with_ext(path_stem, f".{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.savez(handle, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64))
    os.replace(tmp, npz)
    tmp.write_text(json.dumps(metadata, indent=2, sort_keys=True))
    os.replace(tmp, meta)


def load_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(mu [D], sigma [D, D]) float64 from an ``.npz`` holding arrays ``mu`` and ``sigma``: this cache's format, the
    one of ``semtok stats`` and of ADM's (guided-diffusion) reference batches
    (:func:`semtok.metrics.image_batches.read_stats`, its checks and one-line errors)."""
    from semtok.metrics.image_batches import read_stats

    return read_stats(path)


def _matching_metadata(stem: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The cache's JSON metadata when it matches ``key`` exactly; else None."""
    meta = _with_ext(stem, ".json")
    if not meta.is_file():
        return None
    try:
        metadata = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(metadata, dict) or any(metadata.get(name) != key[name] for name in KEY_FIELDS):
        return None
    return metadata


def _load_cached(stem: Path, key: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """Cached (mu, sigma) when the metadata matches ``key`` exactly and the arrays load; else None."""
    npz = _with_ext(stem, ".npz")
    if not npz.is_file() or _matching_metadata(stem, key) is None:
        return None
    try:
        return load_stats(npz)
    except SemtokError:
        return None


def _load_cached_features(stem: Path, key: dict[str, Any]) -> np.ndarray | None:
    """Cached float32 features [N, D] when the metadata matches ``key`` and records N; else None."""
    path = _with_ext(stem, FEATURES_EXT)
    metadata = _matching_metadata(stem, key)
    if metadata is None or not path.is_file():
        return None
    try:
        features = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if features.dtype != np.float32 or features.ndim != 2 or features.shape[0] != metadata.get("num_images"):
        return None
    return features


def _reference_key(
    dataset_id: str, split: str, image_size: int, extractor: InceptionFeatures, limit: int | None
) -> dict[str, Any]:
    return {
        "dataset_id": str(dataset_id),
        "split": str(split),
        "image_size": int(image_size),
        "extractor_id": extractor.extractor_id,
        "limit": None if limit is None else int(limit),
    }


def _cache_stem(key: dict[str, Any], cache_dir: str | Path | None) -> Path:
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / cache_name(key)


def reference_features(
    dataset_id: str,
    split: str,
    image_size: int,
    extractor: InceptionFeatures,
    images_iter_fn: Callable[[], Iterable],
    cache_dir: str | Path | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Features [N, 2048] float32 of a reference image set, from the cache or computed and cached.

    Same arguments, key and cache files as :func:`reference_stats`. When computed, the features
    (``<name>.features.npy``), the statistics (``<name>.npz``, from these float32 features) and the metadata
    (``<name>.json``, written last) are all stored, so a later ``reference_stats`` call needs no pass over the
    images. TF-Inception features are float32 inside the network, so storing them as float32 loses nothing.
    """
    from semtok import __version__

    key = _reference_key(dataset_id, split, image_size, extractor, limit)
    stem = _cache_stem(key, cache_dir)
    cached = _load_cached_features(stem, key)
    if cached is not None:
        return cached

    def checked_batches() -> Iterable:
        for batch in images_iter_fn():
            images = batch[0] if isinstance(batch, (tuple, list)) else batch
            if tuple(images.shape[-2:]) != (key["image_size"], key["image_size"]):
                raise SemtokError(
                    f"FID reference '{dataset_id}' ({split}): declared image_size {image_size}, "
                    f"got images of {tuple(images.shape[-2:])}"
                )
            yield images

    features = np.asarray(
        extractor.extract(checked_batches(), limit=limit, progress=progress), dtype=np.float32
    )
    mu, sigma = feature_stats(features)
    metadata = {
        **key,
        "num_images": int(features.shape[0]),
        "features_file": _with_ext(stem, FEATURES_EXT).name,
        "semtok_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    stem.parent.mkdir(parents=True, exist_ok=True)
    tmp = _with_ext(stem, f".features.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, features, allow_pickle=False)
    os.replace(tmp, _with_ext(stem, FEATURES_EXT))
    save_stats(stem, mu, sigma, metadata)
    return features


def reference_stats(
    dataset_id: str,
    split: str,
    image_size: int,
    extractor: InceptionFeatures,
    images_iter_fn: Callable[[], Iterable],
    cache_dir: str | Path | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(mu [2048], sigma [2048, 2048]) float64 of a reference image set, from the cache or computed and cached.

    Args:
        dataset_id: names the data set's content (e.g. "mnist5k", or an image folder's resolved path).
        split: e.g. "val" or "train" (the ADM protocol uses a train-set reference batch: record which).
        image_size: side of the images ``images_iter_fn`` yields; checked against every batch.
        extractor: the feature extractor; its ``extractor_id`` is part of the key.
        images_iter_fn: no-argument callable returning an iterable of batches: uint8 [B, 3, H, W], float in
            [-1, 1], or ``(images, labels)`` tuples. Called only when the cache cannot be used.
        cache_dir: defaults to :func:`default_cache_dir`.
        limit: use at most this many images (part of the key); None -> all.
        progress: show a progress bar while computing.

    The key is (dataset_id, split, image_size, extractor_id, limit); the JSON metadata also records
    ``num_images`` and ``semtok_version``. Metadata that does not match the key means recompute. When the
    statistics are not cached, they come from :func:`reference_features` (cached features, or one pass over the
    images that caches features and statistics together).
    """
    key = _reference_key(dataset_id, split, image_size, extractor, limit)
    stem = _cache_stem(key, cache_dir)
    cached = _load_cached(stem, key)
    if cached is not None:
        return cached
    features = reference_features(
        dataset_id, split, image_size, extractor, images_iter_fn, cache_dir, limit, progress
    )
    cached = _load_cached(stem, key)  # written by reference_features when it computed the features
    if cached is not None:
        return cached
    mu, sigma = feature_stats(features)  # features were cached but the statistics were not: add them
    metadata = json.loads(_with_ext(stem, ".json").read_text())
    save_stats(stem, mu, sigma, metadata)
    return mu, sigma
