"""Improved precision and recall of a generative model (Kynkaanniemi et al., NeurIPS 2019), with k-NN manifolds.

In a feature space (e.g. TF-Inception pool3, see :mod:`semtok.metrics.inception`), each set's manifold is the
union of balls around its points, the radius of a point's ball being the distance to its ``k``-th nearest
neighbour in the same set, the point itself excluded (k = 3 by default, as in the paper):

- precision: the share of generated (fake) points that lie in the real manifold (inside at least one real ball);
- recall: the share of real points that lie in the fake manifold.

"Inside" counts the boundary (distance <= radius, up to float64 round-off), as the reference implementation does. Distances are Euclidean,
computed in float64 by ``|a|^2 + |b|^2 - 2 a.b`` (clamped at 0), one block of at most ``chunk_size`` x
``chunk_size`` at a time: no N x M matrix is ever held whole, so 50k x 50k sets fit in a few hundred MB.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from semtok.errors import SemtokError

__all__ = ["knn_radii", "manifold_coverage", "precision_recall"]

_SLACK = 16 * np.finfo(np.float64).eps


def _as_features(name: str, features: Any) -> np.ndarray:
    array = np.asarray(features.detach().cpu() if hasattr(features, "detach") else features, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
        raise SemtokError(f"precision/recall: expected {name} features [N, D], got shape {array.shape}")
    if not np.isfinite(array).all():
        raise SemtokError(f"precision/recall: {name} features contain NaN or inf")
    return array


def _squared_distances(a: np.ndarray, a_sq: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances [len(a), len(b)] float64, clamped at 0 (round-off can make them negative)."""
    d2 = a_sq[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d2, 0.0, out=d2)


def knn_radii(features: Any, k: int = 3, chunk_size: int = 4096) -> np.ndarray:
    """Distance of each point of ``features`` [N, D] to its ``k``-th nearest neighbour in the set, itself excluded.

    Returns float64 [N] (>= 0). Needs N > k. Exact duplicates count as neighbours at distance 0 (only the point
    itself is excluded, once). Memory: blocks of ``chunk_size`` x ``chunk_size`` distances.
    """
    feats = _as_features("the", features)
    _check_k_chunk(k, chunk_size)
    n = feats.shape[0]
    if n <= k:
        raise SemtokError(f"precision/recall: k = {k} nearest neighbours need more than {k} points, got {n}")
    sq = np.einsum("ij,ij->i", feats, feats)
    radii = np.empty(n, dtype=np.float64)
    for start in range(0, n, chunk_size):
        rows = feats[start : start + chunk_size]
        # The k + 1 smallest squared distances of each row so far; the point itself (distance ~0) is among them.
        best = np.full((rows.shape[0], k + 1), np.inf)
        for col in range(0, n, chunk_size):
            block = _squared_distances(
                rows,
                sq[start : start + chunk_size],
                feats[col : col + chunk_size],
                sq[col : col + chunk_size],
            )
            if col == start:  # the diagonal block: a point's distance to itself is exactly 0
                index = np.arange(rows.shape[0])
                block[index, index] = 0.0
            merged = np.concatenate([best, block], axis=1)
            best = np.partition(merged, k, axis=1)[:, : k + 1]
        radii[start : start + rows.shape[0]] = np.sqrt(best.max(axis=1))
    return radii


def manifold_coverage(manifold: Any, radii: np.ndarray, queries: Any, chunk_size: int = 4096) -> np.ndarray:
    """Whether each query point [M, D] lies in the k-NN manifold of ``manifold`` [N, D] with ``radii`` [N].

    Returns bool [M]: True where some manifold point ``j`` has ``|query - manifold_j| <= radii_j``.
    """
    points = _as_features("manifold", manifold)
    query = _as_features("query", queries)
    _check_k_chunk(1, chunk_size)
    radii = np.asarray(radii, dtype=np.float64)
    if radii.shape != (points.shape[0],):
        raise SemtokError(f"precision/recall: expected {points.shape[0]} radii, got shape {radii.shape}")
    if points.shape[1] != query.shape[1]:
        raise SemtokError(
            f"precision/recall: feature dimensions differ: {points.shape[1]} (manifold) vs {query.shape[1]} (queries)"
        )
    radii_sq = radii**2
    points_sq = np.einsum("ij,ij->i", points, points)
    query_sq = np.einsum("ij,ij->i", query, query)
    inside = np.zeros(query.shape[0], dtype=bool)
    for start in range(0, query.shape[0], chunk_size):
        rows = query[start : start + chunk_size]
        hit = inside[start : start + rows.shape[0]]
        for col in range(0, points.shape[0], chunk_size):
            block = _squared_distances(
                rows,
                query_sq[start : start + chunk_size],
                points[col : col + chunk_size],
                points_sq[col : col + chunk_size],
            )
            # Round-off of the expansion is about eps * (|a|^2 + |b|^2): within that, a point is on the boundary
            # (so an exact copy of a manifold point whose radius is 0, e.g. a collapsed mode, counts as inside).
            slack = _SLACK * (
                query_sq[start : start + chunk_size, None] + points_sq[None, col : col + chunk_size]
            )
            hit |= (block <= radii_sq[None, col : col + chunk_size] + slack).any(axis=1)
            if hit.all():
                break
    return inside


def precision_recall(real: Any, fake: Any, k: int = 3, chunk_size: int = 4096) -> dict[str, float]:
    """Improved precision and recall of ``fake`` [M, D] against ``real`` [N, D] (numpy or torch, any float dtype).

    Returns ``{"precision": float in [0, 1], "recall": float in [0, 1]}``. Needs N > k and M > k. Features are
    compared in float64; ``chunk_size`` bounds each distance block to ``chunk_size`` x ``chunk_size`` (8 bytes each).
    """
    real_feats = _as_features("real", real)
    fake_feats = _as_features("fake", fake)
    if real_feats.shape[1] != fake_feats.shape[1]:
        raise SemtokError(
            f"precision/recall: feature dimensions differ: real {real_feats.shape[1]}, fake {fake_feats.shape[1]}"
        )
    _check_k_chunk(k, chunk_size)
    real_radii = knn_radii(real_feats, k, chunk_size)
    fake_radii = knn_radii(fake_feats, k, chunk_size)
    precision = manifold_coverage(real_feats, real_radii, fake_feats, chunk_size).mean()
    recall = manifold_coverage(fake_feats, fake_radii, real_feats, chunk_size).mean()
    return {"precision": float(precision), "recall": float(recall)}


def _check_k_chunk(k: int, chunk_size: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise SemtokError(f"precision/recall: k must be a positive integer, got {k!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int | np.integer) or chunk_size < 1:
        raise SemtokError(f"precision/recall: chunk_size must be a positive integer, got {chunk_size!r}")
