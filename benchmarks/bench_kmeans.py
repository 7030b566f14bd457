"""Benchmark: spherical k-means (faiss, as `semtok build cluster` runs it) beside this machine's float32 matmul rate.

N x 768 float32 vectors (a seeded Gaussian mixture, unit-normalised), K = 8192, 10 iterations, 2 threads.
GFLOP/s counts the assignment matmuls, 2 * N * K * d per iteration (the centroid update, N * d, is negligible).
The matmul rate is measured in the same run on the same shapes' building block (torch.mm and numpy, fp32; the
best of them is the limit k-means can approach). Peak memory: the process's max RSS (ru_maxrss) after the run.

    python benchmarks/bench_kmeans.py [--n 200000] [--n 1000000] [--json benchmarks/results_kmeans.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from semtok.tokenizers.cluster_build import spherical_kmeans

NUMPY_RATE = """
import sys, time, numpy as np
rows, dim, k, repeats = map(int, sys.argv[1:])
a, b = np.random.rand(rows, dim).astype(np.float32), np.random.rand(dim, k).astype(np.float32)
a @ b
best = min((lambda s: (a @ b, time.perf_counter() - s)[1])(time.perf_counter()) for _ in range(repeats))
print(2 * rows * dim * k / best / 1e9)
"""


def numpy_gflops_native(threads: int, dim: int, k: int, rows: int, repeats: int) -> float:
    """numpy's rate in a subprocess without OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, which this workplace sets to
    pin an older (Haswell) kernel: the CPU's own (AVX-512) kernel is the real limit."""
    env = {k_: v for k_, v in os.environ.items() if k_ not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env["OPENBLAS_NUM_THREADS"] = str(threads)
    command = [sys.executable, "-c", NUMPY_RATE, str(rows), str(dim), str(k), str(repeats)]
    return float(subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout)


def matmul_gflops(threads: int, dim: int = 768, k: int = 8192, rows: int = 8192, repeats: int = 5) -> dict:
    """Best-of-``repeats`` GFLOP/s of a [rows, dim] @ [dim, k] fp32 product: torch, numpy as configured here,
    numpy with the CPU's native kernel; ``best`` is the machine's rate."""
    torch.set_num_threads(threads)
    a, b = torch.randn(rows, dim), torch.randn(dim, k)
    out = torch.empty(rows, k)
    torch.mm(a, b, out=out)
    best = min(_time(lambda: torch.mm(a, b, out=out)) for _ in range(repeats))
    a_np, b_np = a.numpy(), b.numpy()
    a_np @ b_np
    best_np = min(_time(lambda: a_np @ b_np) for _ in range(repeats))
    flop = 2 * rows * dim * k
    rates = {"torch": flop / best / 1e9, "numpy": flop / best_np / 1e9}
    rates["numpy_native_kernel"] = numpy_gflops_native(threads, dim, k, rows, repeats)
    rates["best"] = max(rates.values())
    return rates


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def mixture(n: int, dim: int, centres: int = 4096, seed: int = 0) -> np.ndarray:
    """n unit vectors around ``centres`` random directions (float32 [n, dim])."""
    rng = np.random.default_rng(seed)
    means = rng.standard_normal((centres, dim), dtype=np.float32)
    x = means[rng.integers(0, centres, n)] + 0.7 * rng.standard_normal((n, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--n", type=int, action="append", help="number of vectors (repeatable; default 200000)"
    )
    parser.add_argument("--k", type=int, default=8192)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default="benchmarks/results_kmeans.json")
    args = parser.parse_args()
    import faiss

    faiss.omp_set_num_threads(args.threads)
    rates = matmul_gflops(args.threads, args.dim, args.k)
    print(
        f"fp32 matmul GFLOP/s, {args.threads} threads: " + ", ".join(f"{k} {v:.1f}" for k, v in rates.items())
    )
    rows = []
    for n in args.n or [200_000]:
        x = mixture(n, args.dim)
        start = time.perf_counter()
        centroids, info = spherical_kmeans(x, args.k, iters=args.iters, seed=0, max_points=n)
        seconds = time.perf_counter() - start
        gflops = 2 * n * args.k * args.dim * args.iters / seconds / 1e9
        row = {
            "n": n,
            "dim": args.dim,
            "k": args.k,
            "iters": args.iters,
            "seconds": round(seconds, 1),
            "gflops": round(gflops, 1),
            "share_of_matmul_rate": round(gflops / rates["best"], 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0),
            "points_trained_on": info["points"],
        }
        rows.append(row)
        print(json.dumps(row))
    print("| N | d | K | iters | seconds | GFLOP/s | share of fp32 matmul rate | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['n']} | {r['dim']} | {r['k']} | {r['iters']} | {r['seconds']} | {r['gflops']} "
            f"| {r['share_of_matmul_rate']} | {r['peak_rss_mb']} |"
        )
    Path(args.json).write_text(
        json.dumps({"matmul_gflops": rates, "threads": args.threads, "rows": rows}, indent=2)
    )


if __name__ == "__main__":
    main()
