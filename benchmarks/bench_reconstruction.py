"""Benchmark: pixel tokenizers at equal budgets on the embedded default (issue 3's table).

Trains VQGAN, FSQ, CVQ-VAE (the `*-mnist` configs), VQ-KD + its pixel decoder (`vqkd-mnist`, then
`decoder-vqkd-mnist`) and Cluster tokenizers (k-means: `cluster-mnist`; online: `cluster-online-mnist`) with the
same pixel decoder, then evaluates each on the 500 MNIST-5k val images: codebook usage, perplexity, PSNR, SSIM,
rFID (TF-Inception pool3 against the val originals). A finished run (and its evaluation, `eval_bench.json`) is
reused, a crashed one resumed.

    python benchmarks/bench_reconstruction.py [--out runs/bench/recon] [--set train.steps=500 ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from semtok.config import load_config
from semtok.evaluation.tokenizer import evaluate_tokenizer
from semtok.tokenizers.cluster_build import ClusterRunConfig, build_cluster_tokenizer
from semtok.training import train
from semtok.training.checkpoint import latest_checkpoint
from semtok.training.cluster_online import ClusterTrainRunConfig
from semtok.training.pixel import RUN_CONFIGS
from semtok.training.vqkd import VQKDRunConfig


def timed_stage(run: Path, train) -> float:
    """Train unless finished; the seconds this took (or the recorded seconds of a finished run)."""
    summary_path = run / "summary.json"
    if (run / "tokenizer" / "model.safetensors").exists() and summary_path.exists():
        summary = json.loads(summary_path.read_text())
        return summary.get("train_seconds_this_session") or summary["seconds"]["total"]
    started = time.time()
    train(latest_checkpoint(run) is not None)
    return round(time.time() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/bench/recon")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="applied to every stage")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default="benchmarks/results_reconstruction.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)

    rows = []
    for kind in ("vqgan", "fsq", "cvq"):
        config = load_config(RUN_CONFIGS[kind], f"{kind}-mnist", args.overrides)
        seconds = timed_stage(out / kind, lambda resume, k=kind, c=config: train(k, c, out / k, resume))
        rows.append((kind, f"{kind}-mnist", out / kind, seconds, config.train.steps))

    cluster_config = load_config(ClusterRunConfig, "cluster-mnist")
    online_config = load_config(ClusterTrainRunConfig, "cluster-online-mnist")
    vqkd_config = load_config(VQKDRunConfig, "vqkd-mnist", args.overrides)
    vqkd_seconds = timed_stage(out / "vqkd", lambda resume: train("vqkd", vqkd_config, out / "vqkd", resume))
    decoder_config = load_config(
        RUN_CONFIGS["decoder"], "decoder-vqkd-mnist", [f"tokenizer={out / 'vqkd'}", *args.overrides]
    )
    decoder_seconds = timed_stage(
        out / "decoder", lambda resume: train("decoder", decoder_config, out / "decoder", resume)
    )
    rows.append(
        (
            "vqkd + decoder",
            "vqkd-mnist + decoder-vqkd-mnist",
            out / "decoder",
            round(vqkd_seconds + decoder_seconds, 1),
            f"{vqkd_config.train.steps} + {decoder_config.train.steps}",
        )
    )

    for name, stage, build in (
        (
            "cluster (k-means)",
            "cluster",
            lambda resume: build_cluster_tokenizer(cluster_config, out / "cluster"),
        ),
        (
            "cluster (online)",
            "cluster-online",
            lambda resume: train("cluster", online_config, out / "cluster-online", resume),
        ),
    ):
        build_seconds = timed_stage(out / stage, build)
        decoder = load_config(
            RUN_CONFIGS["decoder"], "decoder-vqkd-mnist", [f"tokenizer={out / stage}", *args.overrides]
        )
        run = out / f"{stage}-decoder"
        decoder_seconds = timed_stage(run, lambda resume, c=decoder, r=run: train("decoder", c, r, resume))
        rows.append(
            (
                name,
                f"{stage}-mnist + decoder-vqkd-mnist",
                run,
                round(build_seconds + decoder_seconds, 1),
                f"{'k-means ' + str(cluster_config.model.kmeans_iters) + ' it' if stage == 'cluster' else online_config.train.steps}"
                f" + {decoder.train.steps}",
            )
        )

    table = []
    for name, config_name, run, seconds, steps in rows:
        cached = run / "eval_bench.json"
        if cached.exists():
            table.append(json.loads(cached.read_text()))
            print(json.dumps(table[-1]))
            continue
        results = evaluate_tokenizer(run, "mnist5k", "val", progress=False)
        table.append(
            {
                "tokenizer": name,
                "config": config_name,
                "steps": steps,
                "train_seconds": seconds,
                "codes": results["num_codes"],
                "usage": round(results["usage"], 4),
                "perplexity": round(results["perplexity"], 1),
                "psnr": round(results["psnr"], 2),
                "ssim": round(results["ssim"], 4),
                "rfid": round(results["rfid"], 2),
                "fid_extractor": results["fid_extractor"],
                "fid_reference": results["fid_reference"],
                "perceptual_loss": json.loads((run / "summary.json").read_text()).get("perceptual_loss"),
            }
        )
        cached.write_text(json.dumps(table[-1], indent=2))
        print(json.dumps(table[-1]))
    print("| tokenizer | steps | train s | codes | usage | perplexity | PSNR | SSIM | rFID |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in table:
        print(
            f"| {r['tokenizer']} | {r['steps']} | {r['train_seconds']} | {r['codes']} | {r['usage']} "
            f"| {r['perplexity']} | {r['psnr']} | {r['ssim']} | {r['rfid']} |"
        )
    Path(args.json).write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
