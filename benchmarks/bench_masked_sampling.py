"""Sampling speed of the masked (MaskGIT / MAGE) proposal network beside the AR sampler, and the share of the
machine's fp32 matmul rate that masked decoding reaches.

    python benchmarks/bench_masked_sampling.py [--out benchmarks/results_masked_sampling.json] [--repeats 3]
        [--threads N] [--quick] [--profile]

Workload (random weights, seeded, fp32, CPU): batch 16, 256 tokens per image (16 x 16), 8192 codes, 1000 classes,
12 layers x 768 x 12 heads, LLaMA style (the default), for both families; the default ``SamplingConfig``
(temperature 1, top-k 600, top-p 0.92, classifier-free guidance 1.75, so every forward runs 2B = 32 rows; the masked
path: 12 steps, cosine schedule, choice temperature 4.5). Both models run through
:func:`semtok.generators.cpu_inference.pack_for_cpu` as the ``Sampler`` does (oneDNN-prepacked fp32 linear layers,
default batch hint).

Each path runs in its own fresh subprocess: build, pack, drop the unpacked copy (the masked one then also times the
square and the ``down`` GEMM below, and again after sampling), reset the resident-set high-water mark (writes "5" to
/proc/self/clear_refs, Linux), then one warm-up run (the masked warm-up is a 1-step run: the same shapes, so the same
oneDNN primitives and allocations) and ``--repeats`` timed runs; seconds is their median. Peak memory: ``VmHWM``
after sampling (the peak resident set while sampling, model included), ``VmRSS`` before it (the packed model and
torch), their difference (what sampling adds), and ``ru_maxrss`` read before the reset (the peak of building and
packing).

FLOPs are counted analytically, every matmul at 2 FLOPs per multiply-add: per layer and token ``qkv`` (C x 3C),
``proj`` (C x C), SwiGLU ``gate_up`` (C x 2H) and ``down`` (H x C) with H as in ``ar.py``, attention scores and
values (2 x L x C per token over all heads, L = 257 positions: the class token + 256); the head (C x V) at the 256
image positions; times the 32 rows and the 12 steps. The AR path's count (one token per position through the KV
cache, attention over the filled prefix) is given for context: it is bound by reading the weights, not by compute.

The machine's fp32 matmul rate is measured at the same thread count in the main process just before and after the
two sampling subprocesses, and in the masked subprocess just before and after its runs: a square
[2048 x 2048] @ [2048 x 2048] ``torch.mm`` and the model's own products on 32 x 257 rows (``torch.mm`` and the oneDNN
packed linear the model uses). "The machine's rate" is the largest of them (named in the output); the goal is masked
GFLOP/s >= 0.5 of it. A per-step breakdown of the masked path times one forward, ``sample_logits`` (top-k 600 over
[B*N, V]), ``log_softmax`` + gather over [B*N, V] and the guidance mix on their own; ``--profile`` adds a
torch.profiler table of one decoding step. ``--quick``: tiny sizes, one repeat (a smoke test in seconds; its numbers
mean nothing). The full run does ~19 TFLOP per masked batch: minutes per repeat on a 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from semtok.generators import ARConfig, ARTransformer, SamplingConfig, generate, sample_logits
from semtok.generators.cpu_inference import PackedLinear, pack_for_cpu
from semtok.generators.masked import MaskedConfig, MaskedTransformer
from semtok.generators.masked_sampling import generate_masked

SHAPES = {
    "full": {
        "depth": 12,
        "width": 768,
        "heads": 12,
        "vocab_size": 8192,
        "grid": (16, 16),
        "num_classes": 1000,
    },
    "quick": {"depth": 2, "width": 64, "heads": 2, "vocab_size": 512, "grid": (8, 8), "num_classes": 10},
}
BATCH = 16
SQUARE = {"full": 2048, "quick": 256}


# ---------------------------------------------------------------------------------------------------------------
# helpers


def _status_mb(key: str) -> float | None:
    """``VmRSS`` or ``VmHWM`` of this process from /proc/self/status, in MiB (None off Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current RSS
        return True
    except OSError:
        return False


def _cpu_pressure() -> float | None:
    """Share of the last 10 s (in %) in which some runnable task waited for a CPU (Linux PSI), or None."""
    try:
        with open("/proc/pressure/cpu") as f:
            return float(f.readline().split()[1].split("=")[1])
    except (OSError, IndexError, ValueError):
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _median_time(fn, repeats: int, warmup: bool = True) -> tuple[float, list[float]]:
    if warmup:
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def _config(shape: dict, cls: type) -> ARConfig:
    h, w = shape["grid"]
    fields = {k: v for k, v in shape.items() if k != "grid"}
    return cls(size="base", style="llama", seq_len=h * w, grid=(h, w), **fields)


def _build(family: str, shape: dict) -> torch.nn.Module:
    """Random-init model (seed 0), the head not zero (sampling from a non-uniform model), packed for the CPU."""
    torch.manual_seed(0)
    if family == "masked":
        model = MaskedTransformer(_config(shape, MaskedConfig)).eval()
    else:
        model = ARTransformer(_config(shape, ARConfig)).eval()
    torch.nn.init.normal_(model.head.weight, std=0.02)
    return pack_for_cpu(model)  # as the Sampler does (default batch hint)


def swiglu_hidden(config: ARConfig) -> int:
    hidden = int(2 * config.mlp_ratio * config.width / 3)
    return 64 * math.ceil(hidden / 64)  # as semtok.generators.ar.SwiGLU


def layer_flops_per_token(config: ARConfig) -> int:
    """Linear-layer FLOPs of one block for one token (qkv, proj, SwiGLU gate_up and down)."""
    c, h = config.width, swiglu_hidden(config)
    return 2 * c * 3 * c + 2 * c * c + 2 * c * 2 * h + 2 * h * c


def masked_flops(config: ARConfig, rows: int, steps: int) -> dict:
    """FLOPs of ``steps`` full forwards over ``rows`` sequences of ``[class] + seq_len`` tokens."""
    length, c, n = config.seq_len + 1, config.width, config.seq_len
    linear = config.depth * length * layer_flops_per_token(config)
    attention = config.depth * 2 * (2 * length * length * c)  # scores q k^T and values p v, all heads
    head = n * 2 * c * config.vocab_size
    per_step = rows * (linear + attention + head)
    return {
        "per_step": per_step,
        "total": per_step * steps,
        "share_linear": linear / (linear + attention + head),
        "share_attention": attention / (linear + attention + head),
        "share_head": head / (linear + attention + head),
    }


def ar_flops(config: ARConfig, rows: int) -> int:
    """FLOPs of KV-cached AR decoding: one token per position; attention over the filled prefix."""
    n, c = config.seq_len, config.width
    linear = n * config.depth * layer_flops_per_token(config)
    attention = config.depth * 2 * 2 * c * sum(t + 1 for t in range(n))
    head = n * 2 * c * config.vocab_size
    return rows * (linear + attention + head)


# ---------------------------------------------------------------------------------------------------------------
# the machine's matmul rate (main process)


def gemm_rates(shape: dict, square: int, repeats: int, only: tuple[str, ...] | None = None) -> list[dict]:
    """GFLOP/s of plain large fp32 GEMMs and of the model's own products at 2B x (N + 1) rows; ``only``: a subset of
    ``square``, ``qkv``, ``gate_up``, ``down``, ``head``."""
    config = _config(shape, MaskedConfig)
    rows = 2 * BATCH * (config.seq_len + 1)
    c, h, v = config.width, swiglu_hidden(config), config.vocab_size
    gen = torch.Generator().manual_seed(0)
    out = []

    def measure(name: str, fn, flops: int) -> None:
        seconds, _ = _median_time(fn, repeats)
        out.append(
            {
                "gemm": name,
                "seconds": round(seconds, 5),
                "gflops": round(flops / seconds / 1e9, 1),
                "cpu_pressure": _cpu_pressure(),
            }
        )
        if only is None:
            print(f"  {name}: {out[-1]['gflops']} GFLOP/s", flush=True)

    a = torch.randn(square, square, generator=gen)
    b = torch.randn(square, square, generator=gen)
    result = torch.empty(square, square)
    if only is None or "square" in only:
        measure(
            f"torch.mm [{square}x{square}]@[{square}x{square}]",
            lambda: torch.mm(a, b, out=result),
            2 * square**3,
        )
    for label, k, n in (("qkv", c, 3 * c), ("gate_up", c, 2 * h), ("down", h, c), ("head", c, v)):
        if only is not None and label not in only:
            continue
        m = 2 * BATCH * config.seq_len if label == "head" else rows  # the head skips the class position
        x = torch.randn(m, k, generator=gen)
        linear = torch.nn.Linear(k, n, bias=False)
        flops = 2 * m * k * n
        if label == "qkv":
            weight_t = linear.weight.detach().t().contiguous()
            measure(f"torch.mm [{m}x{k}]@[{k}x{n}] ({label})", lambda x=x, w=weight_t: torch.mm(x, w), flops)
        packed = PackedLinear(linear, 16) if _onednn() else None
        if packed is not None:
            measure(
                f"oneDNN packed linear [{m}x{k}]@[{k}x{n}] ({label}, hint 16)",
                lambda x=x, p=packed: p(x),
                flops,
            )
            if label == "qkv":
                tall = PackedLinear(linear, m)
                measure(
                    f"oneDNN packed linear [{m}x{k}]@[{k}x{n}] ({label}, hint {m})",
                    lambda x=x, p=tall: p(x),
                    flops,
                )
    return out


def _onednn() -> bool:
    from semtok.generators.cpu_inference import onednn_linear_available

    return onednn_linear_available()


# ---------------------------------------------------------------------------------------------------------------
# one path in a fresh subprocess


def _step_breakdown(model, shape: dict, sampling: SamplingConfig, repeats: int) -> dict:
    """Seconds of the parts of one masked decoding step, each on its own (half the tokens masked)."""
    config = model.config
    n, v = config.seq_len, config.vocab_size
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(v, (BATCH, n), generator=gen)
    ids[torch.rand(BATCH, n, generator=gen) < 0.5] = config.mask_id
    labels = torch.arange(BATCH) % config.num_classes
    run_labels = torch.cat([labels, torch.full_like(labels, config.null_class)])
    parts = {}
    with torch.inference_mode():
        parts["forward (2B rows)"], _ = _median_time(
            lambda: model(ids.repeat(2, 1), run_labels), 1, warmup=False
        )
        logits = model(ids.repeat(2, 1), run_labels)
        cond, uncond = logits[:BATCH], logits[BATCH:]
        parts["guidance mix"], _ = _median_time(
            lambda: uncond + sampling.cfg_scale * (cond - uncond), repeats
        )
        flat = (uncond + sampling.cfg_scale * (cond - uncond)).reshape(BATCH * n, v)
        (
            parts[f"sample_logits (top-k {sampling.top_k}, top-p {sampling.top_p}) over [{BATCH * n}, {v}]"],
            _,
        ) = _median_time(
            lambda: sample_logits(flat, sampling.temperature, sampling.top_k, sampling.top_p, gen), repeats
        )
        drawn = flat.argmax(-1)
        parts[f"log_softmax + gather over [{BATCH * n}, {v}]"], _ = _median_time(
            lambda: flat.log_softmax(dim=-1).gather(-1, drawn.view(-1, 1)), repeats
        )
    return {k: round(s, 4) for k, s in parts.items()}


def _profile_step(model, labels: torch.Tensor, sampling: SamplingConfig) -> str:
    from torch.profiler import ProfilerActivity, profile

    one = SamplingConfig(**{**sampling.__dict__, "steps": 1})
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        generate_masked(model, labels, one, seed=0)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20)


def worker(family: str, mode: str, repeats: int, threads: int, breakdown: bool, profile: bool) -> dict:
    torch.set_num_threads(threads)
    shape = SHAPES[mode]
    model = _build(family, shape)  # the unpacked copy is dropped on return
    config = model.config
    sampling = SamplingConfig()
    labels = torch.arange(BATCH) % config.num_classes
    rows = 2 * BATCH if sampling.cfg_scale != 1.0 else BATCH
    if family == "masked":
        run = lambda: generate_masked(model, labels, sampling, seed=0)  # noqa: E731
        warm = lambda: generate_masked(model, labels, SamplingConfig(steps=1), seed=0)  # noqa: E731
        flops = masked_flops(config, rows, sampling.steps)
    else:
        run = lambda: generate(model, labels, sampling, seed=0)  # noqa: E731
        warm = run
        flops = {"total": ar_flops(config, rows)}
    gemm_only = ("square", "down")  # the machine's rate in this process, just before and after sampling
    gemm_before = gemm_rates(shape, SQUARE[mode], 3, only=gemm_only) if family == "masked" else []
    build_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # building + packing (+ GEMMs)
    reset = _reset_peak()
    rss_before = _status_mb("VmRSS")
    warm()
    seconds, times = _median_time(run, repeats, warmup=False)
    peak = _status_mb("VmHWM")
    gemm_after = gemm_rates(shape, SQUARE[mode], 3, only=gemm_only) if family == "masked" else []
    result = {
        "family": family,
        "threads": torch.get_num_threads(),
        "rows_per_forward": rows,
        "steps": sampling.steps if family == "masked" else config.seq_len,
        "seconds": round(seconds, 3),
        "all_seconds": [round(t, 3) for t in times],
        "images_per_s": round(BATCH / seconds, 3),
        "flops": flops["total"],
        "gflops": round(flops["total"] / seconds / 1e9, 1),
        "cpu_pressure": _cpu_pressure(),
        "memory": {
            "rss_before_sampling_mb": None if rss_before is None else round(rss_before),
            "peak_rss_while_sampling_mb": None if peak is None or not reset else round(peak),
            "sampling_growth_mb": None if peak is None or not reset else round(peak - rss_before),
            "peak_rss_before_sampling_mb": round(build_peak),
        },
        "gemm_in_worker": {"before": gemm_before, "after": gemm_after},
    }
    if family == "masked":
        result["flops_detail"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in flops.items()}
        if breakdown:
            parts = _step_breakdown(model, shape, sampling, max(repeats, 1))
            step = seconds / sampling.steps
            result["step_seconds"] = round(step, 4)
            result["step_breakdown_seconds"] = parts
            result["step_breakdown_share"] = {k: round(s / step, 3) for k, s in parts.items()}
            forward = parts["forward (2B rows)"]
            result["forward_gflops"] = round(flops["per_step"] / forward / 1e9, 1)
        if profile:
            result["profile"] = _profile_step(model, labels, sampling)
    return result


def _run_worker(family: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", family, "--repeats", str(args.repeats)]
    cmd += ["--threads", str(args.threads)] + (["--quick"] if args.quick else [])
    cmd += ["--profile"] if args.profile else []
    cmd += ["--no-breakdown"] if args.no_breakdown else []
    res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if res.returncode:
        sys.stderr.write(res.stderr)
        raise SystemExit(f"worker {family} failed ({res.returncode})")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="default benchmarks/results_masked_sampling[_quick].json")
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed runs after the warm-up (3; --quick 1)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--profile", action="store_true", help="torch.profiler table of one masked step")
    parser.add_argument(
        "--no-breakdown", action="store_true", help="skip the per-step breakdown of the masked path"
    )
    parser.add_argument("--worker", choices=["masked", "ar"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    args.repeats = max(1, args.repeats if args.repeats is not None else (1 if args.quick else 3))
    args.threads = args.threads or torch.get_num_threads()
    if args.worker:
        result = worker(args.worker, mode, args.repeats, args.threads, not args.no_breakdown, args.profile)
        print(json.dumps(result))
        return
    torch.set_num_threads(args.threads)
    out = Path(args.out or f"benchmarks/results_masked_sampling{'_quick' if args.quick else ''}.json")
    shape = SHAPES[mode]
    started = time.time()
    print(f"CPU pressure before: {_cpu_pressure()}% (Linux PSI avg10; > 5 means other processes compete)")
    print("fp32 GEMM rate (before) ...", flush=True)
    gemm_before = gemm_rates(shape, SQUARE[mode], max(args.repeats, 3))
    print("masked sampling (subprocess) ...", flush=True)
    masked = _run_worker("masked", args)
    print({k: masked[k] for k in ("seconds", "images_per_s", "gflops")}, flush=True)
    print("AR sampling (subprocess) ...", flush=True)
    ar = _run_worker("ar", args)
    print({k: ar[k] for k in ("seconds", "images_per_s", "gflops")}, flush=True)
    print("fp32 GEMM rate (after) ...", flush=True)
    gemm_after = gemm_rates(shape, SQUARE[mode], max(args.repeats, 3))
    in_worker = masked["gemm_in_worker"]["before"] + masked["gemm_in_worker"]["after"]
    all_gemms = gemm_before + gemm_after + in_worker
    best = max(all_gemms, key=lambda g: g["gflops"])
    square_rate = max(
        g["gflops"] for g in all_gemms if g["gemm"].startswith("torch.mm [" + str(SQUARE[mode]))
    )
    model_rate = max(
        g["gflops"] for g in all_gemms if not g["gemm"].startswith("torch.mm [" + str(SQUARE[mode]))
    )
    ratio = masked["gflops"] / best["gflops"]
    summary = {
        "machine_rate_gflops": best["gflops"],
        "machine_rate_from": best["gemm"] + " (the largest rate measured in this run)",
        "square_gemm_gflops": square_rate,
        "model_shape_gemm_gflops": model_rate,
        "masked_gflops": masked["gflops"],
        "masked_share_of_machine_rate": round(ratio, 3),
        "masked_share_of_rate_in_its_subprocess": (
            round(masked["gflops"] / max(g["gflops"] for g in in_worker), 3) if in_worker else None
        ),
        "goal_share": 0.5,
        "goal_met": ratio >= 0.5,
        "masked_forward_share_of_machine_rate": (
            round(masked["forward_gflops"] / best["gflops"], 3) if "forward_gflops" in masked else None
        ),
        "masked_vs_ar_seconds": round(masked["seconds"] / ar["seconds"], 2),
    }
    config = _config(shape, MaskedConfig)
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "mode": mode,
        "machine": {
            "cpu": _cpu_model(),
            "cpu_count": os.cpu_count(),
            "threads": args.threads,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "onednn_packed_linear": _onednn(),
        },
        "workload": {
            **{k: list(v) if isinstance(v, tuple) else v for k, v in shape.items()},
            "style": "llama",
            "swiglu_hidden": swiglu_hidden(config),
            "batch": BATCH,
            "sampling": SamplingConfig().__dict__,
            "packing": "pack_for_cpu(model) (default batch hint 16), as the Sampler",
        },
        "repeats": args.repeats,
        "gemm_before": gemm_before,
        "gemm_after": gemm_after,
        "masked": masked,
        "ar": ar,
        "summary": summary,
        "wall_seconds": round(time.time() - started, 1),
        "memory_method": "fresh subprocess per path; VmHWM reset (/proc/self/clear_refs) after building and packing; "
        "peak = VmHWM after warm-up + timed runs, growth = peak - VmRSS before them; peak_rss_before_sampling: "
        "ru_maxrss before the reset (building, packing)",
        "cpu_pressure_method": "Linux PSI /proc/pressure/cpu 'some avg10' read after each timing",
    }
    profile = masked.pop("profile", None)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    if profile:
        print(profile)

    name = f"{shape['depth']} x {shape['width']} x {shape['heads']} heads"
    print(
        f"\n{mode}: {name}, {shape['vocab_size']} codes, grid {shape['grid']}, batch {BATCH}, CFG 1.75 "
        f"(32 rows per forward), {args.threads} threads, median of {args.repeats}\n"
    )
    print(
        "| path | seconds | images/s | GFLOP/s | share of machine rate | peak RSS while sampling (MB) | growth (MB) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, r in ((f"masked, {masked['steps']} steps", masked), ("AR, KV cache", ar)):
        mem = r["memory"]
        print(
            f"| {label} | {r['seconds']} | {r['images_per_s']} | {r['gflops']} | "
            f"{r['gflops'] / best['gflops']:.3f} | {mem['peak_rss_while_sampling_mb']} | {mem['sampling_growth_mb']} |"
        )
    print("\n| fp32 GEMM (before / after the sampling runs) | GFLOP/s before | after |")
    print("|---|---:|---:|")
    for b, a in zip(gemm_before, gemm_after):
        print(f"| {b['gemm']} | {b['gflops']} | {a['gflops']} |")
    for b, a in zip(masked["gemm_in_worker"]["before"], masked["gemm_in_worker"]["after"]):
        print(f"| {b['gemm']}, in the masked subprocess | {b['gflops']} | {a['gflops']} |")
    if "step_breakdown_seconds" in masked:
        print(f"\n| masked step part (step = {masked['step_seconds']} s) | seconds | share of a step |")
        print("|---|---:|---:|")
        for part, s in masked["step_breakdown_seconds"].items():
            print(f"| {part} | {s} | {masked['step_breakdown_share'][part]:.3f} |")
    print(
        f"\nmachine rate {best['gflops']} GFLOP/s ({best['gemm']}); masked {masked['gflops']} GFLOP/s = "
        f"{ratio:.3f} of it (goal >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'})"
    )
    pressures = [g["cpu_pressure"] for g in all_gemms] + [
        masked["cpu_pressure"],
        ar["cpu_pressure"],
    ]
    pressures = [p for p in pressures if p is not None]
    if pressures and max(pressures) > 5:
        print("warning: other processes competed for the CPU during some timings; rerun on a quiet machine")
    print(f"results: {out}  ({results['wall_seconds']} s)")


if __name__ == "__main__":
    main()
