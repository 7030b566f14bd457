"""Training throughput at the paper's shapes, measured on this machine, and a projected wall time on 8 x H100.

    python benchmarks/bench_throughput.py [--batch 2] [--repeats 2] [--mfu 0.4] [--out benchmarks/results_throughput.json]

Workloads, built from the shipped configs as the training stages build them (random weights, no download):
- ``vqkd-clip-in1k``: ViT-B/16 student at 224 px (14 x 14 tokens), codebook 8192 x 32, depth-1 decoder, and the
  CLIP ViT-B/16 teacher (open_clip vision tower, ``model.teacher.random_init=true``); one step = teacher targets
  (forward only, as :class:`semtok.training.vqkd.VQKDStage` computes them under augmentation) + student forward,
  loss, backward, gradient clipping, AdamW step;
- ``ar-medium-in1k``: LLaMA-style 24 x 1024 x 16 heads, 8192 codes, 16 x 16 = 256 tokens, 1000 classes (the model
  filled in from a token manifest of those shapes, :func:`semtok.training.ar.filled_from_tokens`); one step =
  label dropout, forward, next-token loss, backward, clipping, AdamW step;
- ``nar-in1k``: the masked model of that config (12 x 768 x 12 heads) on the same token shapes, MAGE masking.
Timing: fp32 on the CPU (the configs' bf16 autocast is a GPU setting), ``--repeats`` steps after one warm-up step
(the VQ-KD warm-up step also runs the codebook's k-means init); images/s = batch / median step time.
FLOPs: :class:`torch.utils.flop_counter.FlopCounterMode` over one more step (matmuls, convolutions, attention; a
multiply-add counts 2; the teacher counted with PyTorch's fused attention fast path off, which the counter cannot
see into), forward + backward, the VQ-KD teacher (forward only) and student separately; per image =
step FLOPs / batch. This CPU's achieved FLOP/s = step FLOPs / median step seconds.
Projection (a PROJECTION, not a measurement): recipe steps x global batch x FLOPs per image / (8 x 989 TFLOP/s
dense bf16 per H100 SXM x ``--mfu``); data loading, evaluation and checkpoints are left out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from semtok.config import load_config
from semtok.pipelines.machine import machine_info

H100_BF16_DENSE = 989e12  # FLOP/s per H100 SXM, dense bf16 (NVIDIA's datasheet figure without sparsity)
GPUS = 8
GRID, CODES, CLASSES = (16, 16), 8192, 1000


def vqkd_workload(batch: int) -> dict:
    from semtok.losses.distillation import cosine_distillation_loss
    from semtok.teachers.base import teacher_targets
    from semtok.teachers.config import build_resolved_teacher
    from semtok.tokenizers.vqkd import VQKDTokenizer
    from semtok.training.optim import build_optimizer
    from semtok.training.vqkd import VQKDRunConfig

    config = load_config(VQKDRunConfig, "vqkd-clip-in1k", ["model.teacher.random_init=true"])
    torch.manual_seed(0)
    teacher, teacher_config = build_resolved_teacher(config.model.teacher)
    model_config = dataclasses.replace(config.model, teacher=teacher_config)
    model = VQKDTokenizer(model_config).train()
    optimizer = build_optimizer(model, config.train)
    size = model_config.image_size
    images = torch.rand(batch, 3, size, size) * 2 - 1

    def targets() -> torch.Tensor:
        return teacher_targets(teacher, images, model.grid_size)

    def student(target: torch.Tensor) -> None:
        decoded, _, aux = model(images)
        loss = cosine_distillation_loss(decoded, target) + aux["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return {
        "config": "vqkd-clip-in1k",
        "shape": f"{size} px, {model.grid_size[0]}x{model.grid_size[1]} tokens, teacher {teacher.name}",
        "parts": {"teacher": targets, "student": student},
        "recipe": config.train,
        "params": {
            "student": sum(p.numel() for p in model.parameters()),
            "teacher": sum(p.numel() for p in teacher.parameters()),
        },
    }


def generator_workload(kind: str, batch: int) -> dict:
    from semtok.losses.next_token import masked_token_loss, next_token_loss
    from semtok.training.ar import ARRunConfig, drop_labels, filled_from_tokens
    from semtok.training.optim import build_optimizer

    manifest = {"grid": list(GRID), "num_codes": CODES, "num_classes": CLASSES}
    if kind == "ar":
        from semtok.generators.ar import ARTransformer as model_class

        config = load_config(ARRunConfig, "ar-medium-in1k")
    else:
        from semtok.generators.masked import MaskedTransformer as model_class
        from semtok.training.nar import NARRunConfig, mask_ratios, random_mask

        config = load_config(NARRunConfig, "nar-in1k")
    model_config = filled_from_tokens(config.model, manifest, "(benchmark shapes)")
    torch.manual_seed(0)
    model = model_class(model_config).train()
    optimizer = build_optimizer(model, config.train)
    ids = torch.randint(0, CODES, (batch, GRID[0] * GRID[1]))
    labels = torch.randint(0, CLASSES, (batch,))

    def step(_: object = None) -> None:
        condition = drop_labels(labels, model_config.null_class, model_config.class_dropout)
        if kind == "ar":
            loss = next_token_loss(model(ids, labels_B=condition).float(), ids)
        else:
            masked = random_mask(ids, mask_ratios(batch, config.masking, ids.device))
            logits = model(ids.masked_fill(masked, model_config.mask_id), labels_B=condition)
            loss = masked_token_loss(logits.float(), ids, masked, config.masking.label_smoothing)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    name = "ar-medium-in1k" if kind == "ar" else "nar-in1k"
    size = f"{model_config.depth} x {model_config.width} x {model_config.heads} heads"
    return {
        "config": name,
        "shape": f"{size}, {GRID[0]}x{GRID[1]} tokens, {CODES} codes, {CLASSES} classes",
        "parts": {"model": step},
        "recipe": config.train,
        "params": {"model": sum(p.numel() for p in model.parameters())},
    }


def run_step(parts: dict[str, Callable]) -> None:
    if "teacher" in parts:
        parts["student"](parts["teacher"]())
    else:
        parts["model"]()


def counted_flops(parts: dict[str, Callable]) -> dict[str, int]:
    """FLOPs of one step per part (the teacher's forward, the student's forward + backward)."""
    flops = {}
    if "teacher" in parts:
        # The frozen teacher's nn.MultiheadAttention takes its fused inference kernel, which the counter sees as
        # one op without a formula (0 FLOPs): count it on the unfused path (the same arithmetic).
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            with FlopCounterMode(display=False) as counter:
                target = parts["teacher"]()
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
        flops["teacher"] = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            parts["student"](target)
        flops["student"] = counter.get_total_flops()
    else:
        with FlopCounterMode(display=False) as counter:
            parts["model"]()
        flops["model"] = counter.get_total_flops()
    return flops


def measure(workload: dict, batch: int, repeats: int, mfu: float) -> dict:
    parts = workload["parts"]
    run_step(parts)  # warm-up (VQ-KD: k-means init of the codebook)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_step(parts)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    flops = counted_flops(parts)
    step_flops = sum(flops.values())
    recipe = workload["recipe"]
    images = recipe.steps * recipe.batch_size
    total = images * step_flops / batch
    projected = total / (GPUS * H100_BF16_DENSE * mfu)
    return {
        "config": workload["config"],
        "shape": workload["shape"],
        "params": workload["params"],
        "batch": batch,
        "step_seconds": [round(t, 3) for t in times],
        "images_per_s": round(batch / seconds, 3),
        "gflop_per_image": {part: round(value / batch / 1e9, 2) for part, value in flops.items()},
        "gflop_per_image_total": round(step_flops / batch / 1e9, 2),
        "cpu_achieved_gflop_per_s": round(step_flops / seconds / 1e9, 1),
        "recipe": {"steps": recipe.steps, "global_batch": recipe.batch_size, "images": images},
        "recipe_flop": float(f"{total:.4g}"),
        "projected_8xH100_hours": round(projected / 3600, 2),
        "projected_this_cpu_days": round(images / (batch / seconds) / 86400, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--mfu", type=float, default=0.4, help="model-FLOPs utilisation of the projection")
    parser.add_argument("--only", choices=["vqkd", "ar", "nar"], action="append")
    parser.add_argument("--out", default="benchmarks/results_throughput.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    rows = []
    builders = {
        "vqkd": lambda: vqkd_workload(args.batch),
        "ar": lambda: generator_workload("ar", args.batch),
        "nar": lambda: generator_workload("nar", args.batch),
    }
    for name in args.only or list(builders):
        started = time.perf_counter()
        row = measure(builders[name](), args.batch, args.repeats, args.mfu)
        row["wall_seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        print(json.dumps(row))
    out = Path(args.out)
    if args.only and out.exists():  # a partial run replaces its own rows and keeps the others
        names = {row["config"] for row in rows}
        rows = [row for row in json.loads(out.read_text())["rows"] if row["config"] not in names] + rows
        order = ["vqkd-clip-in1k", "ar-medium-in1k", "nar-in1k"]
        rows.sort(key=lambda row: order.index(row["config"]))
    result = {
        "device": "cpu, fp32",
        "projection": {
            "gpus": GPUS,
            "peak_flop_per_s_per_gpu": H100_BF16_DENSE,
            "peak": "H100 SXM dense bf16 (no sparsity)",
            "mfu": args.mfu,
            "formula": "recipe steps x global batch x FLOPs per image / (gpus x peak x mfu)",
            "left_out": "data loading and augmentation, evaluation, checkpoints, start-up",
        },
        "rows": rows,
        "machine": machine_info(),
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
