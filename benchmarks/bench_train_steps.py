"""Training steps/s of every stage on the embedded default, before vs after a change, in one run.

    python benchmarks/bench_train_steps.py --before REV [--steps 30] [--warmup 6] [--out benchmarks/results_train_steps.json]

Each (source tree, stage) runs in its own subprocess with that tree on ``PYTHONPATH``: the ``REV`` tree is a
``git worktree`` of the revision checked out into a temporary folder, the "after" tree is this checkout. Stages,
with the configs ``make demo`` and the bench suite use (mnist5k, 32 px): ``vqkd`` (vqkd-mnist), ``decoder``
(decoder-vqkd-mnist on a 1-step VQ-KD tokenizer: its cost does not depend on the tokenizer's quality), ``vqgan``
(vqgan-mnist, with its GAN on from step 0 so every step pays it), ``ar`` (ar-mnist) and ``nar`` (nar-mnist) on
that tokenizer's token files, ``judge`` (judge-mnist). Timing: the wall time of each call of the stage's ``step``
(forward, loss, backward, optimizer) after ``--warmup`` steps, median and mean; ``setup_s`` is the time from the
start of the run to its first step (data, teacher and token caches; the VQ-KD teacher cache is most of it).
Run it alone: on 2 cores a second torch process slows both ~10x.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("vqkd", "vqkd_bf16", "decoder", "vqgan", "ar", "ar_attn0", "nar", "judge")

CHILD = r"""
import json, statistics, sys, time
from semtok.config import load_config
from semtok.training import train
from semtok.training.engine import Engine

kind, config_name, steps, warmup, out, *overrides = sys.argv[1:]
steps, warmup = int(steps), int(warmup)
times, marks = [], {}
original_run = Engine.run

def timed_run(self, *args, **kwargs):
    marks["start"] = time.perf_counter()
    stage_step = type(self.stage).step

    def step(stage, batch, engine):
        if "first" not in marks:
            marks["first"] = time.perf_counter()
        begin = time.perf_counter()
        result = stage_step(stage, batch, engine)
        times.append(time.perf_counter() - begin)
        return result

    type(self.stage).step = step
    try:
        return original_run(self, *args, **kwargs)
    finally:
        type(self.stage).step = stage_step

Engine.run = timed_run
from semtok.training.registry import config_class
config = load_config(config_class(kind), config_name, [f"train.steps={steps}", "train.checkpoint_every=100000", *overrides])
train(kind, config, out, False, False)
kept = times[warmup:]
print(json.dumps({"step_s_median": statistics.median(kept), "step_s_mean": statistics.fmean(kept),
                  "steps_timed": len(kept), "setup_s": marks["first"] - marks["start"],
                  "warmup_s": sum(times[:warmup])}))
"""


def run_child(
    tree: Path, kind: str, config: str, steps: int, warmup: int, out: Path, overrides: list[str]
) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    command = [sys.executable, "-c", CHILD, kind, config, str(steps), str(warmup), str(out), *overrides]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{kind} in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def tokenize(tree: Path, tokenizer: Path, split: str, out: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "semtok",
            "tokenize",
            str(tokenizer),
            "--data",
            "mnist5k",
            "--split",
            split,
            "--out",
            str(out),
        ],
        env=env,
        capture_output=True,
        check=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before", required=True, help="git revision of the 'before' code")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=6)
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results_train_steps.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from semtok.pipelines.machine import machine_info

    work = Path(tempfile.mkdtemp(prefix="bench_steps_"))
    before = work / "before"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(before), args.before], check=True
    )
    try:
        trees = {"before": before, "after": ROOT}
        # one tokenizer and its token files for the decoder, AR and masked stages (made by the after code)
        shared = work / "shared"
        run_child(ROOT, "vqkd", "vqkd-mnist", 1, 0, shared / "vqkd", [])
        for split in ("train", "val"):
            tokenize(ROOT, shared / "vqkd", split, shared / f"{split}.json")
        tokens = [f"data.tokens={shared / 'train.json'}", f"data.val_tokens={shared / 'val.json'}"]
        plan = {
            "vqkd": ("vqkd", "vqkd-mnist", []),
            "vqkd_bf16": ("vqkd", "vqkd-mnist", ["train.mixed_precision=bf16"]),
            "decoder": ("decoder", "decoder-vqkd-mnist", [f"tokenizer={shared / 'vqkd'}"]),
            "vqgan": ("vqgan", "vqgan-mnist", ["loss.disc_start=0"]),
            "ar": ("ar", "ar-mnist", tokens),
            "ar_attn0": ("ar", "ar-mnist", [*tokens, "model.attn_dropout=0"]),
            "nar": ("nar", "nar-mnist", tokens),
            "judge": ("judge", "judge-mnist", []),
        }
        results: dict = {
            "machine": machine_info(),
            "before": args.before,
            "steps": args.steps,
            "warmup": args.warmup,
            "stages": {},
        }
        for name in args.stages.split(","):
            kind, config, overrides = plan[name]
            row = {"overrides": overrides}
            for label, tree in trees.items():
                overrides = row["overrides"]
                if label == "before" and name == "ar_attn0":  # the key is new: the before row is `ar`'s
                    if "ar" in results["stages"]:
                        row[label] = results["stages"]["ar"]["before"]
                        continue
                    overrides = tokens
                row[label] = run_child(
                    tree, kind, config, args.steps, args.warmup, work / label / name, overrides
                )
                print(name, label, row[label], flush=True)
            row["speedup"] = row["before"]["step_s_median"] / row["after"]["step_s_median"]
            results["stages"][name] = row
        out = Path(args.out)
        if out.exists():  # a run of some stages keeps the other stages' earlier rows
            kept = json.loads(out.read_text()).get("stages", {})
            results["stages"] = {
                **{k: v for k, v in kept.items() if k not in results["stages"]},
                **results["stages"],
            }
        out.write_text(json.dumps(results, indent=2))
        print("\n| stage | before s/step | after s/step | speed-up | before setup s | after setup s |")
        print("|---|---:|---:|---:|---:|---:|")
        for kind, row in results["stages"].items():
            b, a = row["before"], row["after"]
            print(
                f"| {kind} | {b['step_s_median']:.3f} | {a['step_s_median']:.3f} | {row['speedup']:.2f}x | "
                f"{b['setup_s']:.1f} | {a['setup_s']:.1f} |"
            )
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False)


if __name__ == "__main__":
    main()
