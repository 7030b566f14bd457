"""The whole pipeline under `torchrun` on this CPU (gloo): 2 processes against 1, end to end.

mnist5k -> webdataset shards -> VQ-KD trained from the shards -> pixel decoder -> tokenize -> AR -> sample ->
evaluate --generation (gFID, precision / recall, class accuracy, ADM sample batch). Training runs with 2 processes
(a stream of shard draws per process: a 1-process run sees other batches, so its weights differ by design);
tokenize, sample and evaluate run with 1 and with 2 processes and must give identical ids, images and metrics.

    python benchmarks/bench_distributed.py [--out runs/bench/distributed] [--steps 60]

Writes OUT/results_distributed.json and prints the comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def semtok(processes: int, *args: str) -> float:
    """Run `semtok ARGS` under torchrun with ``processes`` processes (plain python for 1); returns seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if processes == 1:
        command = [sys.executable, "-m", "semtok", *args]
    else:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            f"--nproc_per_node={processes}",
            "-m",
            "semtok",
        ]
        command += list(args)
    started = time.time()
    print("$", " ".join(command[2:] if processes == 1 else command[2:]), flush=True)
    subprocess.run(command, check=True, env=env)
    return time.time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench/distributed")
    parser.add_argument("--steps", type=int, default=60, help="training steps of each stage")
    parser.add_argument("--num-samples", type=int, default=200)
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    os.environ["SEMTOK_CACHE"] = str(out / "cache")
    steps = [
        "--set",
        f"train.steps={args.steps}",
        "--set",
        "train.warmup_steps=5",
        "--set",
        f"train.checkpoint_every={args.steps}",
        "--no-progress",
    ]
    seconds: dict[str, float] = {}
    seconds["shards"] = semtok(
        1, "shards", "mnist5k", "--split", "train", "--shard-size", "250", "--out", str(out / "shards")
    )
    shards = str(out / "shards")
    seconds["train vqkd (2 processes)"] = semtok(
        2, "train", "vqkd", "--config", "vqkd-mnist", "--data", shards, "--out", str(out / "vqkd"), *steps
    )
    seconds["train decoder (2 processes)"] = semtok(
        2,
        "train",
        "decoder",
        "--tokenizer",
        str(out / "vqkd"),
        "--config",
        "decoder-vqkd-mnist",
        "--data",
        shards,
        "--out",
        str(out / "decoder"),
        *steps,
    )
    results: dict[str, object] = {"steps": args.steps}
    for processes in (1, 2):
        tag = f"p{processes}"
        seconds[f"tokenize train ({processes})"] = semtok(
            processes,
            "tokenize",
            str(out / "decoder"),
            "--data",
            "mnist5k",
            "--split",
            "train",
            "--out",
            str(out / f"tokens-{tag}"),
            "--no-progress",
        )
    ids = [np.load(out / f"tokens-p{p}.npy") for p in (1, 2)]
    results["tokenize_ids_equal"] = bool(np.array_equal(*ids))
    results["tokenize_rows"] = int(ids[0].shape[0])
    semtok(
        1,
        "tokenize",
        str(out / "decoder"),
        "--data",
        "mnist5k",
        "--split",
        "val",
        "--out",
        str(out / "val"),
        "--no-progress",
    )
    seconds["train ar (2 processes)"] = semtok(
        2,
        "train",
        "ar",
        "--tokens",
        str(out / "tokens-p1.json"),
        "--val-tokens",
        str(out / "val.json"),
        "--config",
        "ar-mnist",
        "--out",
        str(out / "ar"),
        *steps,
    )
    for processes in (1, 2):
        tag = f"p{processes}"
        seconds[f"sample ({processes})"] = semtok(
            processes,
            "sample",
            str(out / "ar"),
            "--all-classes",
            "--num-images",
            "4",
            "--seed",
            "3",
            "--batch-size",
            "8",
            "--images",
            str(out / f"samples-{tag}"),
            "--out",
            str(out / f"samples-{tag}.png"),
            "--no-progress",
        )
        seconds[f"evaluate --generation ({processes})"] = semtok(
            processes,
            "evaluate",
            str(out / "ar"),
            "--generation",
            "--data",
            "mnist5k",
            "--num-samples",
            str(args.num_samples),
            "--batch-size",
            "25",
            "--samples-npz",
            str(out / f"samples-{tag}.npz"),
            "--out",
            str(out / f"eval-{tag}.json"),
            "--no-progress",
        )
    pngs = [sorted((out / f"samples-p{p}").glob("*.png")) for p in (1, 2)]
    from PIL import Image

    results["sample_images_equal"] = len(pngs[0]) == len(pngs[1]) > 0 and all(
        np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b))) for a, b in zip(*pngs)
    )
    batches = [np.load(out / f"samples-p{p}.npz") for p in (1, 2)]
    results["evaluate_samples_equal"] = bool(np.array_equal(batches[0]["arr_0"], batches[1]["arr_0"]))
    evals = [json.loads((out / f"eval-p{p}.json").read_text()) for p in (1, 2)]
    for key in ("gfid", "precision", "recall", "samples"):
        results[f"{key}_1_vs_2"] = [evals[0].get(key), evals[1].get(key)]
    results["metrics_equal"] = all(
        evals[0].get(k) == evals[1].get(k) for k in ("gfid", "precision", "recall")
    )
    losses = [json.loads(line) for line in (out / "vqkd" / "log.jsonl").read_text().splitlines()]
    results["vqkd_final_loss"] = next(
        (row["loss/total"] for row in reversed(losses) if "loss/total" in row), None
    )
    results["seconds"] = {key: round(value, 1) for key, value in seconds.items()}
    (out / "results_distributed.json").write_text(json.dumps(results, indent=2))
    shutil.copy(out / "results_distributed.json", HERE / "results_distributed.json")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
