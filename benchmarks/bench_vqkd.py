"""Benchmark: train `vqkd-mnist` on 2 CPU threads within a time budget and evaluate it on the val split.

Targets (issue 2): codebook usage >= 0.9 and val cosine similarity to the teacher >= 0.8, trained in <= 10 minutes.

    python benchmarks/bench_vqkd.py [--out runs/bench/vqkd] [--set train.steps=2000 ...] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import torch

from semtok.config import load_config
from semtok.evaluation.tokenizer import evaluate_tokenizer
from semtok.training import train
from semtok.training.vqkd import VQKDRunConfig


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/bench/vqkd-mnist")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default="benchmarks/results_vqkd.json")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    config = load_config(VQKDRunConfig, "vqkd-mnist", args.overrides)
    started = time.time()
    train("vqkd", config, out, progress=True)
    train_seconds = time.time() - started
    results = evaluate_tokenizer(out, "mnist5k", "val", progress=False)
    row = {
        "config": "vqkd-mnist",
        "overrides": args.overrides,
        "steps": config.train.steps,
        "batch_size": config.train.batch_size,
        "train_seconds": round(train_seconds, 1),
        "val_usage": round(results["usage"], 4),
        "val_perplexity": round(results["perplexity"], 1),
        "val_teacher_cosine": round(results["teacher_cosine"], 4),
        "threads": args.threads,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
        "targets_met": results["usage"] >= 0.9 and results["teacher_cosine"] >= 0.8 and train_seconds <= 600,
    }
    print("| config | steps | batch | train s | val usage | val perplexity | val cosine | targets met |")
    print("|---|---|---|---|---|---|---|---|")
    print(
        f"| vqkd-mnist | {row['steps']} | {row['batch_size']} | {row['train_seconds']} | {row['val_usage']} "
        f"| {row['val_perplexity']} | {row['val_teacher_cosine']} | {row['targets_met']} |"
    )
    Path(args.json).write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    main()
