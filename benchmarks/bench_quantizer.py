"""Speed and memory of one VectorQuantizer training step against a bare matmul and vector-quantize-pytorch.

    python benchmarks/bench_quantizer.py [--out benchmarks/results_quantizer.json] [--repeats 5]

Workload (the VQ-KD codebook): N = 65,536 vectors, K = 8192 codes, d = 32, cosine, fp32, 2 CPU threads.
A "training step" is one forward in training mode (assignment + EMA update + dead-code check; the input
requires grad so the autograd graph is built) with the codebook already initialised: no k-means inside
the timed step. Times are the median of ``--repeats`` runs after one warm-up run.

Baselines:
- bare matmul ``[N, d] @ [d, K]``, both with a fresh output (as ``z @ c.T`` allocates it) and with a
  preallocated ``out=`` (the stricter baseline; the ratio goal uses it);
- vector-quantize-pytorch ``VectorQuantize(dim=32, codebook_size=8192, use_cosine_sim=True, decay=0.99,
  kmeans_init=True, kmeans_iters=10, commitment_weight=1.0)`` after its k-means init step.

Peak memory: each measurement runs in a fresh subprocess (vector-quantize-pytorch initialises there on a
1024-vector batch). Just before one step it resets the kernel's resident-set high-water mark (writes "5"
to /proc/self/clear_refs, Linux), then reports ``VmHWM`` after the step minus ``VmRSS`` before it: the
peak growth of resident memory caused by the step (pages actually touched, by torch and anything else;
inputs and model state that exist before the step are not counted).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

N, K, D = 65536, 8192, 32
THREADS = 2


def _status_mb(key: str) -> float:
    """``VmRSS`` or ``VmHWM`` of this process from /proc/self/status, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"{key} not in /proc/self/status")


def _data(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(4 * K, D, generator=g)
    ids = torch.randint(4 * K, (N,), generator=g)
    return centers[ids] + 0.3 * torch.randn(N, D, generator=g)


def _ours(z: torch.Tensor):
    from semtok.quantizers import VectorQuantizer

    vq = VectorQuantizer(
        K, D, distance="cosine", ema_decay=0.99, kmeans_init=True, dead_code_steps=50
    ).train()
    with torch.no_grad():  # initialised codebook without running k-means (random batch rows)
        vq.codebook.copy_(F.normalize(z[torch.randperm(N)[:K]], dim=-1))
        vq.ema_sum.copy_(vq.codebook)
        vq.initialized.fill_(True)
    return vq


def _vqp(init_batch: torch.Tensor):
    from vector_quantize_pytorch import VectorQuantize

    vq = VectorQuantize(
        dim=D,
        codebook_size=K,
        use_cosine_sim=True,
        decay=0.99,
        kmeans_init=True,
        kmeans_iters=10,
        commitment_weight=1.0,
    ).train()
    vq(init_batch.reshape(1, -1, D))  # k-means init step (not timed)
    return vq


def _cpu_pressure() -> float | None:
    """Share of the last 10 s (in %) in which some runnable task waited for a CPU (Linux PSI), or None."""
    try:
        with open("/proc/pressure/cpu") as f:
            return float(f.readline().split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        return None


def _timeit(fn, repeats: int) -> dict:
    """Median and min wall time of ``fn`` over ``repeats`` runs after one warm-up; CPU pressure after."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "min_seconds": min(times), "cpu_pressure": _cpu_pressure()}


def _time_matmul_preallocated(zn: torch.Tensor, codes: torch.Tensor, repeats: int) -> float:
    out = torch.empty(zn.shape[0], codes.shape[0])
    return _timeit(lambda: torch.mm(zn, codes.t(), out=out), repeats)


def _ours_with_chunk(z: torch.Tensor, chunk: int):
    vq = _ours(z)
    vq.chunk_size = chunk
    return vq


def child_memory(which: str) -> dict:
    """Run in a fresh process: peak RSS growth of one step of ``which``."""
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    z = _data()
    codes = F.normalize(torch.randn(K, D), dim=-1)
    if which == "ours":
        vq = _ours(z)
        x = z.reshape(64, 1024, D).requires_grad_()
        step = lambda: vq(x)  # noqa: E731
    elif which == "vqp":
        vq = _vqp(z[:1024])
        x = z.reshape(64, 1024, D).requires_grad_()
        step = lambda: vq(x)  # noqa: E731
    elif which == "matmul":
        zn = F.normalize(z, dim=-1)
        step = lambda: torch.mm(zn, codes.t())  # noqa: E731
    else:
        raise ValueError(which)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    rss_before = _status_mb("VmRSS")
    out = step()
    peak = _status_mb("VmHWM")
    del out
    return {"rss_before_mb": rss_before, "peak_mb": peak, "peak_growth_mb": peak - rss_before}


def _memory(which: str) -> dict:
    cmd = [sys.executable, __file__, "--child-memory", which]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results_quantizer.json")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-vqp", action="store_true", help="leave out vector-quantize-pytorch (slow)")
    parser.add_argument("--chunks", default="256,512,1024,2048,4096,8192", help="chunk sizes (rows) to sweep")
    parser.add_argument("--child-memory", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        print(json.dumps(child_memory(args.child_memory)))
        return

    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    z = _data()
    zn = F.normalize(z, dim=-1)
    codes = F.normalize(torch.randn(K, D), dim=-1)
    x = z.reshape(64, 1024, D).clone().requires_grad_()
    rows = {}
    print(f"CPU pressure before: {_cpu_pressure()}% (Linux PSI avg10; > 5 means other processes compete)")

    print("timing our step and bare matmul ...", flush=True)
    ours = _ours(z)
    rows["ours step"] = _timeit(lambda: ours(x), args.repeats)
    rows["matmul (fresh out)"] = _timeit(lambda: torch.mm(zn, codes.t()), args.repeats)
    rows["matmul (preallocated out)"] = _time_matmul_preallocated(zn, codes, args.repeats)
    for chunk in [int(c) for c in args.chunks.split(",") if c]:
        vq = _ours_with_chunk(z, chunk)
        rows[f"ours step, chunk {chunk} rows"] = _timeit(lambda vq=vq: vq(x), args.repeats)

    print("timing our k-means init (first training step) ...", flush=True)
    from semtok.quantizers import VectorQuantizer

    init_times = []
    for _ in range(max(1, args.repeats // 2)):
        fresh = VectorQuantizer(K, D, distance="cosine").train()
        start = time.perf_counter()
        fresh(x)
        init_times.append(time.perf_counter() - start)
    rows["ours init step (k-means 10 it)"] = {
        "seconds": statistics.median(init_times),
        "cpu_pressure": _cpu_pressure(),
    }

    if not args.skip_vqp:
        print("timing vector-quantize-pytorch init and step (slow) ...", flush=True)
        start = time.perf_counter()
        vqp = _vqp(z)
        rows["vqp init step (k-means 10 it)"] = {
            "seconds": time.perf_counter() - start,
            "cpu_pressure": _cpu_pressure(),
        }
        rows["vqp step"] = _timeit(lambda: vqp(x), max(1, args.repeats // 2 + 1))
        del vqp

    print("measuring peak memory in subprocesses ...", flush=True)
    for name, which in [("ours step", "ours"), ("matmul (fresh out)", "matmul"), ("vqp step", "vqp")]:
        if name in rows:
            rows[name]["memory"] = _memory(which)

    t_ours = rows["ours step"]["seconds"]
    summary = {
        "ours / matmul (preallocated)": t_ours / rows["matmul (preallocated out)"]["seconds"],
        "ours / matmul (fresh)": t_ours / rows["matmul (fresh out)"]["seconds"],
    }
    if "vqp step" in rows:
        summary["vqp / ours"] = rows["vqp step"]["seconds"] / t_ours

    print(f"\nN={N}, K={K}, d={D}, cosine, fp32, {THREADS} threads, median of {args.repeats}\n")
    print("| what | seconds (median) | min | x ours | peak growth MB | CPU pressure % |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in rows.items():
        mem = row.get("memory", {}).get("peak_growth_mb")
        mem_s = f"{mem:.0f}" if mem is not None else "-"
        min_s = f"{row['min_seconds']:.3f}" if "min_seconds" in row else "-"
        print(
            f"| {name} | {row['seconds']:.3f} | {min_s} | {row['seconds'] / t_ours:.2f} | {mem_s} "
            f"| {row.get('cpu_pressure')} |"
        )
    print()
    for key, value in summary.items():
        print(f"{key}: {value:.2f}")
    pressures = [r["cpu_pressure"] for r in rows.values() if r.get("cpu_pressure") is not None]
    if pressures and max(pressures) > 5:
        print("warning: other processes competed for the CPU during some timings; rerun on a quiet machine")

    result = {
        "workload": {"N": N, "K": K, "d": D, "distance": "cosine", "dtype": "float32", "threads": THREADS},
        "repeats": args.repeats,
        "torch": torch.__version__,
        "rows": rows,
        "summary": summary,
        "memory_method": "VmHWM after one step minus VmRSS before it, high-water mark reset first, fresh subprocess",
        "cpu_pressure_method": "Linux PSI /proc/pressure/cpu 'some avg10' read after each timing",
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
