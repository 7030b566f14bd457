"""Chunked nearest-code search and k-means (spherical for cosine, Lloyd for l2).

All randomness uses the global torch RNG, so a seed fixes the result.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DISTANCES = ("cosine", "l2")


def default_chunk_size(num_codes: int) -> int:
    """Rows per assignment block when the caller gives none: blocks of 2**25 scores (128 MB of fp32).

    Measured on 2 CPU cores (N = 65,536, K = 8192, see benchmarks/bench_quantizer.py): 256-row blocks
    (8 MB, cache-sized) are fastest on an idle machine (1.2x a bare matmul) but about 15x slower as
    soon as another process competes for the cores, because every block costs two thread-pool
    synchronisations; 4096-row blocks cost 1.7x the matmul idle and 2-2.4x under contention. On a
    GPU such blocks are large enough to keep it busy.
    """
    return max(1, 2**25 // max(1, num_codes))


@torch.no_grad()
def nearest_code(
    x: torch.Tensor, codebook: torch.Tensor, distance: str = "cosine", chunk_size: int | None = None
) -> torch.Tensor:
    """Index of the nearest code for each row of ``x``.

    Args:
        x: ``[N, d]`` fp32. For ``"cosine"`` it must already be l2-normalised (rows of norm 1).
        codebook: ``[K, d]`` fp32. For ``"cosine"`` it must already be l2-normalised.
        distance: ``"cosine"`` (argmax of ``x @ c``) or ``"l2"`` (argmin of ``|x|^2 - 2 x.c + |c|^2``,
            computed as argmax of ``2 x.c - |c|^2``: ``|x|^2`` is the same for every code).
        chunk_size: rows scored at a time; the ``[chunk_size, K]`` score block is the only large
            temporary. ``None`` picks :func:`default_chunk_size`.

    Returns:
        ``[N]`` int64 in ``[0, K)``; ties go to the lowest index.
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, got {distance!r}")
    n, k = x.shape[0], codebook.shape[0]
    ids = torch.empty(n, dtype=torch.long, device=x.device)
    if n == 0:
        return ids
    rows = min(n, chunk_size or default_chunk_size(k))
    codes_t = codebook.t()
    bias = -codebook.pow(2).sum(1) if distance == "l2" else None
    block = torch.empty(rows, k, dtype=x.dtype, device=x.device)
    for start in range(0, n, rows):
        xs = x[start : start + rows]
        scores = block[: xs.shape[0]]
        if bias is None:
            torch.mm(xs, codes_t, out=scores)
        else:
            torch.addmm(bias, xs, codes_t, alpha=2.0, out=scores)
        torch.argmax(scores, dim=1, out=ids[start : start + xs.shape[0]])
    return ids


def cluster_sums(x: torch.Tensor, ids: torch.Tensor, num_codes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-code counts ``[K]`` (fp32) and sums ``[K, d]`` (x's dtype) of the rows assigned to each code."""
    counts = torch.bincount(ids, minlength=num_codes).to(x.dtype)
    sums = torch.zeros(num_codes, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, ids, x)
    return counts, sums


@torch.no_grad()
def kmeans(
    x: torch.Tensor,
    num_clusters: int,
    iters: int = 10,
    distance: str = "cosine",
    chunk_size: int | None = None,
    noise: float = 0.01,
) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means on the rows of ``x``: spherical for ``"cosine"``, Lloyd's for ``"l2"``.

    Centroids start at ``num_clusters`` distinct random rows; each iteration assigns every row to its
    nearest centroid (chunked, see :func:`nearest_code`) and moves each centroid to the mean of its rows
    (re-normalised for cosine). A cluster left empty is re-seeded from a random row.

    If ``x`` has fewer rows than ``num_clusters``, it is padded with rows drawn with replacement plus
    Gaussian noise of ``noise`` times the data's per-dimension std, so every centroid can start on a
    distinct point (such codes are near-duplicates until training moves them).

    Args:
        x: ``[N, d]`` float; used in fp32 (for cosine, rows are l2-normalised first).
        num_clusters: K.
        iters: Lloyd iterations (0 returns the random start).
        distance: ``"cosine"`` or ``"l2"``.
        chunk_size: rows scored at a time (``None``: automatic).
        noise: relative noise scale for the padding rows.

    Returns:
        ``(centroids [K, d] fp32, counts [K] fp32)``: counts are the cluster sizes of the last
        assignment (0 for a cluster re-seeded in the last iteration).
    """
    x = x.detach().float()
    if distance == "cosine":
        x = F.normalize(x, dim=-1)
    n = x.shape[0]
    if n == 0:
        raise ValueError("kmeans needs at least one vector")
    if n < num_clusters:
        extra = x[torch.randint(n, (num_clusters - n,), device=x.device)]
        scale = x.std(0, keepdim=True) if n > 1 else x.abs().clamp_min(1e-3)
        extra = extra + noise * scale * torch.randn_like(extra)
        x = torch.cat([x, extra])
        if distance == "cosine":
            x = F.normalize(x, dim=-1)
        n = x.shape[0]
    centroids = x[torch.randperm(n, device=x.device)[:num_clusters]].clone()
    counts = torch.zeros(num_clusters, device=x.device)
    for _ in range(iters):
        ids = nearest_code(x, centroids, distance, chunk_size)
        counts, sums = cluster_sums(x, ids, num_clusters)
        empty = counts == 0
        centroids = sums / counts.clamp_min(1)[:, None]
        if distance == "cosine":
            centroids = F.normalize(centroids, dim=-1)
        num_empty = int(empty.sum())
        if num_empty:
            centroids[empty] = x[torch.randint(n, (num_empty,), device=x.device)]
    return centroids, counts
