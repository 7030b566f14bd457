"""The VQ-KD "probe gap": why VQ-KD's codes probe far below the Cluster tokenizer's from the same teacher.

    python benchmarks/bench_probe_gap.py [--out runs/bench/probe-gap] [--seeds 0 1 2] [--only H2,H3] [--quick]
                                         [--json benchmarks/results_probe_gap.json] [--threads 2] [--progress]

On MNIST-5k (32 px, 8x8 tokens, EfficientNet-Lite0 teacher at 128 px) the linear probe (mean-pooled code vectors)
gives VQ-KD about 0.6 val top-1 and Cluster about 0.97. Every row is probed with every applicable probe input
(:data:`semtok.evaluation.probe.PROBE_INPUTS`: pooled / flat / decoded / histogram; the same ids, other features)
from its token files; VQ-KD rows also get the val teacher cosine, codebook usage and perplexity
(``evaluate_tokenizer``, no rFID). Hypotheses, one group each (base: ``vqkd-mnist`` at 300 steps):

- H1 probe input: the base VQ-KD, the Cluster tokenizer (``cluster-mnist``) and the teacher's own features (its
  distillation targets on the 8x8 grid: pooled = the upper bound of pooled, flat = the upper bound of flat);
- H2 distillation steps: 100, 300, 1000;
- H3 bottleneck: code_dim 32 vs 112, codebook 1024 vs 8192;
- H4 student size: encoder depth 4 vs 8 (the ``tiny`` ViT, width 192);
- H5 teacher stage: stride 16 (112-d, 8x8) vs stride 8 (40-d, 16x16, resized bicubic to the 8x8 grid by
  ``teacher_targets``), plus the stride-8 teacher's own features.

Each VQ-KD / Cluster row trains once per seed (``--seeds``; ``train.seed`` / ``build.seed``); the probe's hold-out
seed stays 0. Layout: ``OUT/VARIANT/seed{S}/`` with ``tokenizer_run/``, ``tokens/{train,val}.json``,
``eval_val.json``, ``probe_{INPUT}.json`` and ``times.json`` (seconds per stage, kept from the run that computed
it); every stage is skipped when its output exists, so a rerun continues (and a rerun of all groups after
partial ``--only`` runs only collects). ``--only H2,H3``: the rows of those groups (the base row belongs to every
group). Writes ``--json`` (default ``benchmarks/results_probe_gap.json``; ``--quick``: ``OUT/results_quick.json``)
and prints a markdown table (one row per variant, mean and std over seeds).

``--quick``: a smoke test in well under a minute: a 200-image folder taken from MNIST-5k (10 train + 2 val images
per class), a few steps, small codebooks, 10 L-BFGS iterations per probe fit. Its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from semtok.config import load_config
from semtok.pipelines.machine import machine_info
from semtok.pipelines.stages import Stages, resume_train, write_json

GROUPS = {
    "H1": "probe input (same ids, other features)",
    "H2": "distillation steps",
    "H3": "bottleneck (code_dim, codebook size)",
    "H4": "student size (encoder depth)",
    "H5": "teacher stage (stride)",
}
INPUTS = ("pooled", "flat", "decoded", "histogram")
TEACHER_INPUTS = ("pooled", "flat")
GRID = (8, 8)


@dataclass(frozen=True)
class Variant:
    """One row: ``kind`` vqkd (trained from ``vqkd-mnist``), cluster (built from ``cluster-mnist``) or teacher (the
    teacher's own features at ``stride``); ``overrides``: config overrides (``KEY=VALUE``)."""

    groups: tuple[str, ...]
    kind: str
    label: str
    steps: int = 300
    overrides: tuple[str, ...] = ()
    stride: int = 16


VARIANTS: dict[str, Variant] = {
    "vqkd": Variant(tuple(GROUPS), "vqkd", "VQ-KD base: 300 steps, 32-d x 1024, depth 4, stride 16"),
    "vqkd-steps100": Variant(("H2",), "vqkd", "VQ-KD, 100 steps", steps=100),
    "vqkd-steps1000": Variant(("H2",), "vqkd", "VQ-KD, 1000 steps", steps=1000),
    "vqkd-dim112": Variant(
        ("H3",), "vqkd", "VQ-KD, code_dim 112", overrides=("model.quantizer.code_dim=112",)
    ),
    "vqkd-codes8192": Variant(
        ("H3",), "vqkd", "VQ-KD, 8192 codes", overrides=("model.quantizer.num_codes=8192",)
    ),
    "vqkd-depth8": Variant(("H4",), "vqkd", "VQ-KD, encoder depth 8", overrides=("model.encoder_depth=8",)),
    "vqkd-stride8": Variant(
        ("H5",), "vqkd", "VQ-KD, teacher stride 8 (40-d)", overrides=("model.teacher.stride=8",)
    ),
    "cluster": Variant(("H1",), "cluster", "Cluster (k-means 1024 x 112)"),
    "teacher": Variant(("H1",), "teacher", "teacher features, stride 16 (112-d)", stride=16),
    "teacher-stride8": Variant(("H5",), "teacher", "teacher features, stride 8 (40-d)", stride=8),
}

# --quick: a few steps, small codebooks (an override of the variant's own wins over these)
QUICK_VQKD = (
    "train.batch_size=8",
    "train.warmup_steps=1",
    "train.log_every=1",
    "train.checkpoint_every=1000",
    "model.quantizer.num_codes=64",
    "model.quantizer.kmeans_iters=2",
)
QUICK_CODES = {"model.quantizer.num_codes=8192": "model.quantizer.num_codes=128"}
QUICK_CLUSTER = ("model.num_codes=64", "model.kmeans_iters=3")
QUICK_MAX_ITER = 10


def select(only: str | None) -> list[str]:
    """The variants of the groups in ``only`` ("H2,H3"; None: all), in table order."""
    if not only:
        return list(VARIANTS)
    groups = [g.strip().upper() for g in only.split(",") if g.strip()]
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        raise SystemExit(f"--only: expected groups from {', '.join(GROUPS)}, got {only!r}")
    return [name for name, v in VARIANTS.items() if set(v.groups) & set(groups)]


def quick_steps(steps: int) -> int:
    return steps // 300 + 2  # 100 -> 2, 300 -> 3, 1000 -> 5


def vqkd_overrides(variant: Variant, seed: int, data: str, quick: bool) -> list[str]:
    steps = quick_steps(variant.steps) if quick else variant.steps
    own = [QUICK_CODES.get(o, o) for o in variant.overrides] if quick else list(variant.overrides)
    return [
        *(QUICK_VQKD if quick else ()),
        f"train.steps={steps}",
        f"train.seed={seed}",
        f"data.dataset={data}",
        *own,
    ]


def quick_data(out: Path, per_class: tuple[int, int] = (10, 2)) -> str:
    """A small labelled image folder (``train/`` and ``val/``, one subfolder per digit) from MNIST-5k's splits."""
    import numpy as np
    from PIL import Image

    from semtok.data.mnist import _raw_mnist, mnist5k_split_indices

    root = out / "quick-data"
    done = root / "done"
    if done.exists():
        return str(root)
    images, labels = _raw_mnist()
    for split, count in zip(("train", "val"), per_class, strict=True):
        indices = mnist5k_split_indices(split)
        for digit in range(10):
            folder = root / split / str(digit)
            folder.mkdir(parents=True, exist_ok=True)
            for i in indices[labels[indices] == digit][:count]:
                Image.fromarray(np.asarray(images[i])).convert("RGB").save(folder / f"{i}.png")
    done.write_text("")
    return str(root)


# ------------------------------------------------------------------------------------------------ rows
def check_spec(row_dir: Path, spec: dict[str, Any]) -> None:
    """Record what the row folder holds (``variant.json``); a folder made with other overrides (a ``--quick``
    run, another version of the table) is refused rather than reused."""
    path = row_dir / "variant.json"
    if path.exists():
        found = json.loads(path.read_text())
        if found != spec:
            raise SystemExit(
                f"{row_dir}: made with {found}, this run wants {spec}: use another --out or delete the folder"
            )
        return
    row_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, indent=2))


def tokenizer_row(
    name: str,
    variant: Variant,
    seed: int,
    row_dir: Path,
    data: str,
    quick: bool,
    max_iter: int,
    progress: bool,
) -> dict[str, Any]:
    """Train / build the row's tokenizer, tokenize train and val, evaluate (VQ-KD) and probe every input."""
    from semtok.evaluation.probe import probe_token_files
    from semtok.evaluation.tokenizer import evaluate_tokenizer
    from semtok.pipelines.tokenize import tokenize_dataset

    stages = Stages(row_dir)
    run_dir = row_dir / "tokenizer_run"
    tokenizer_dir = run_dir / "tokenizer"
    overrides: list[str] = []
    if variant.kind == "vqkd":
        from semtok.training import train
        from semtok.training.vqkd import VQKDRunConfig

        overrides = vqkd_overrides(variant, seed, data, quick)
        config = load_config(VQKDRunConfig, "vqkd-mnist", overrides)
        work = lambda: resume_train(run_dir, lambda resume: train("vqkd", config, run_dir, resume, progress))  # noqa: E731
    else:
        from semtok.tokenizers.cluster_build import ClusterRunConfig, build_cluster_tokenizer

        overrides = [
            "build.keep_features=false",
            f"build.seed={seed}",
            f"data.dataset={data}",
            *(QUICK_CLUSTER if quick else ()),
        ]
        config = load_config(ClusterRunConfig, "cluster-mnist", overrides)
        work = lambda: build_cluster_tokenizer(config, run_dir, progress)  # noqa: E731
    check_spec(row_dir, {"variant": name, "overrides": overrides, "quick": quick})
    stages.run("tokenizer", tokenizer_dir / "model.safetensors", work)
    for split in ("train", "val"):
        manifest = row_dir / "tokens" / f"{split}.json"
        stages.run(
            f"tokenize_{split}",
            manifest,
            lambda split=split, manifest=manifest: tokenize_dataset(
                tokenizer_dir, data, split, manifest, progress=progress, num_workers=0 if quick else -1
            ),
        )
    eval_path = row_dir / "eval_val.json"
    stages.run(
        "evaluate",
        eval_path,
        lambda: write_json(
            eval_path, evaluate_tokenizer(tokenizer_dir, data, "val", progress=progress, fid=False)
        ),
    )
    tokens = row_dir / "tokens"
    for name_input in INPUTS:
        path = row_dir / f"probe_{name_input}.json"
        stages.run(
            f"probe_{name_input}",
            path,
            lambda name_input=name_input, path=path: write_json(
                path,
                probe_token_files(
                    tokenizer_dir, tokens / "train.json", tokens / "val.json", max_iter, inputs=name_input
                ),
            ),
        )
    evaluation = json.loads(eval_path.read_text())
    summary_path = run_dir / "summary.json"
    return {
        "overrides": overrides,
        "steps": _steps(summary_path, variant, quick),
        "teacher_cosine": evaluation.get("teacher_cosine"),
        "usage": evaluation.get("usage"),
        "perplexity": evaluation.get("perplexity"),
        "num_codes": evaluation.get("num_codes"),
        "probes": {i: _probe_entry(row_dir / f"probe_{i}.json") for i in INPUTS},
        "stage_seconds": dict(stages.times),
    }


def _steps(summary_path: Path, variant: Variant, quick: bool) -> int | None:
    if variant.kind != "vqkd":
        return None
    if summary_path.exists():
        steps = json.loads(summary_path.read_text()).get("steps")
        if isinstance(steps, int):
            return steps
    return quick_steps(variant.steps) if quick else variant.steps


def _probe_entry(path: Path) -> dict[str, Any]:
    probe = json.loads(path.read_text())
    keys = ("val_top1", "train_top1", "holdout_top1", "val_loss", "weight_decay", "feature_dim", "seconds")
    return {key: probe[key] for key in keys if key in probe}


@torch.no_grad()
def teacher_features(stride: int, data: str, split: str, progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The VQ-KD's distillation targets of every image of ``split`` (``vqkd-mnist``'s teacher section at
    ``stride``; ``teacher_targets`` on the 8x8 grid): ``[N, C, 8, 8]`` float32 and labels ``[N]``."""
    from semtok.data import build_dataset
    from semtok.evaluation.common import iterate_batches
    from semtok.teachers.base import teacher_targets
    from semtok.teachers.config import build_teacher_from_config
    from semtok.training.vqkd import VQKDRunConfig

    config = load_config(VQKDRunConfig, "vqkd-mnist", [f"model.teacher.stride={stride}"])
    teacher = build_teacher_from_config(config.model.teacher)
    dataset = build_dataset(data, split, config.model.image_size, augment="none")
    features, labels = [], []
    for images, batch_labels in iterate_batches(dataset, 128, progress, f"teacher {split}"):
        features.append(teacher_targets(teacher, images, GRID).float())
        labels.append(batch_labels.long())
    return torch.cat(features), torch.cat(labels)


def teacher_row(variant: Variant, row_dir: Path, data: str, max_iter: int, progress: bool) -> dict[str, Any]:
    """Probe the teacher's own features: pooled (mean over the grid) and flat ([C, 8, 8] flattened)."""
    from semtok.evaluation.probe import probe_features

    stages = Stages(row_dir)
    cache: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def split_features(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        if split not in cache:  # its seconds count in the first probe stage's
            cache[split] = teacher_features(variant.stride, data, split, progress)
        return cache[split]

    def probe(name_input: str) -> dict[str, Any]:
        (train_x, train_y), (val_x, val_y) = split_features("train"), split_features("val")
        pool = (lambda x: x.mean(dim=(2, 3))) if name_input == "pooled" else (lambda x: x.flatten(1))
        results = {
            "kind": "teacher",
            "data": data,
            "stride": variant.stride,
            "input": name_input,
            "train_images": len(train_y),
            "val_images": len(val_y),
            "grid": list(GRID),
            "feature_dim": int(pool(train_x[:1]).shape[1]),
            "pooling": "teacher_targets on the 8x8 grid, "
            + ("mean over the grid" if name_input == "pooled" else "flattened [C, 8, 8]"),
        }
        results.update(probe_features(pool(train_x), train_y, pool(val_x), val_y, None, max_iter=max_iter))
        return results

    for name_input in TEACHER_INPUTS:
        path = row_dir / f"probe_{name_input}.json"
        stages.run(f"probe_{name_input}", path, lambda n=name_input, p=path: write_json(p, probe(n)))
    return {
        "overrides": [f"model.teacher.stride={variant.stride}"],
        "steps": None,
        "teacher_cosine": None,
        "usage": None,
        "perplexity": None,
        "num_codes": None,
        "probes": {i: _probe_entry(row_dir / f"probe_{i}.json") for i in TEACHER_INPUTS},
        "stage_seconds": dict(stages.times),
    }


# ------------------------------------------------------------------------------------------------ report
def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per variant: mean and std (over seeds) of val top-1 per input, teacher cosine, usage, seconds."""
    out = []
    for name in dict.fromkeys(r["variant"] for r in rows):
        mine = [r for r in rows if r["variant"] == name]

        def stat(values: list[float | None]) -> dict[str, float] | None:
            values = [v for v in values if v is not None]
            if not values:
                return None
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            return {"mean": statistics.fmean(values), "std": std, "n": len(values)}

        inputs = dict.fromkeys(i for r in mine for i in r["probes"])
        out.append(
            {
                "variant": name,
                "groups": list(VARIANTS[name].groups),
                "label": VARIANTS[name].label,
                "steps": mine[0]["steps"],
                "seeds": [r["seed"] for r in mine],
                "val_top1": {i: stat([r["probes"].get(i, {}).get("val_top1") for r in mine]) for i in inputs},
                "teacher_cosine": stat([r["teacher_cosine"] for r in mine]),
                "usage": stat([r["usage"] for r in mine]),
                "wall_seconds": stat([r["wall_seconds"] for r in mine]),
            }
        )
    return out


def _fmt(entry: dict[str, float] | None, digits: int = 3) -> str:
    if entry is None:
        return "-"
    text = f"{entry['mean']:.{digits}f}"
    return text + (f" ± {entry['std']:.{digits}f}" if entry["n"] > 1 else "")


def markdown(summary: list[dict[str, Any]]) -> str:
    head = "| groups | variant | steps | teacher cos | usage | " + " | ".join(INPUTS) + " | wall s |"
    lines = [head, "|" + "---|" * (7 + len(INPUTS) - 1)]
    for s in summary:
        cells = [
            ",".join(s["groups"]),
            s["label"],
            str(s["steps"] or "-"),
            _fmt(s["teacher_cosine"]),
            _fmt(s["usage"], 2),
            *(_fmt(s["val_top1"].get(i)) for i in INPUTS),
            _fmt(s["wall_seconds"], 0),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = quick_data(out) if args.quick else args.data
    max_iter = QUICK_MAX_ITER if args.quick else args.max_iter
    names = select(args.only)
    started = time.time()
    rows = []
    for name in names:
        variant = VARIANTS[name]
        seeds = [0] if variant.kind == "teacher" else args.seeds  # the teacher has no seed
        for seed in seeds:
            row_dir = out / name / ("features" if variant.kind == "teacher" else f"seed{seed}")
            if variant.kind == "teacher":
                row = teacher_row(variant, row_dir, data, max_iter, args.progress)
            else:
                row = tokenizer_row(name, variant, seed, row_dir, data, args.quick, max_iter, args.progress)
            row = {"variant": name, "groups": list(variant.groups), "kind": variant.kind, "seed": seed, **row}
            row["wall_seconds"] = round(sum(row["stage_seconds"].values()), 1)
            rows.append(row)
            top1 = ", ".join(f"{i} {p['val_top1']:.3f}" for i, p in row["probes"].items())
            print(f"[{name} seed {seed}] {top1} ({row['wall_seconds']} s)", flush=True)
    summary = summarize(rows)
    return {
        "benchmark": "probe gap (VQ-KD vs Cluster linear probe)",
        "quick": bool(args.quick),
        "data": data if not args.quick else "quick: 10 train + 2 val MNIST-5k images per class",
        "seeds": list(args.seeds),
        "groups": {g: GROUPS[g] for g in GROUPS if any(g in VARIANTS[n].groups for n in names)},
        "probe_max_iter": max_iter,
        "machine": machine_info(),
        "seconds": round(time.time() - started, 1),
        "rows": rows,
        "summary": summary,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/bench/probe-gap", help="run folders (reused when present)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default 0)")
    parser.add_argument("--only", help="groups to run, e.g. H2,H3 (default: all)")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny data, few steps")
    parser.add_argument("--data", default="mnist5k")
    parser.add_argument("--max-iter", type=int, default=500, help="L-BFGS iterations per probe fit")
    parser.add_argument("--json", help="results file (default benchmarks/results_probe_gap.json)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = run(args)
    default = (
        Path(args.out) / "results_quick.json" if args.quick else Path("benchmarks/results_probe_gap.json")
    )
    path = Path(args.json) if args.json else default
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print()
    print(markdown(results["summary"]))
    print(f"\nresults: {path} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
