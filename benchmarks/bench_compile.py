"""``train.compile`` (torch.compile, inductor) on this machine: each training stage eager vs compiled, one run.

    python benchmarks/bench_compile.py [--stages vqkd,decoder,vqgan,ar,nar,judge] [--steps 30] [--warmup 6]

The stages, configs and timing of ``bench_train_steps.py`` (its child process, this checkout only): median s/step
after ``--warmup`` steps, ``warmup_s`` the first steps' wall time (where the compile happens), and
``break_even_steps``: after how many steps the compiled run has caught up with the eager one
(compile cost / seconds saved per step; None when compiled steps are not faster). Results go to
``benchmarks/results_compile.json``. Run it alone: on 2 cores a second torch process slows both ~10x.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train_steps import ROOT, run_child, tokenize  # noqa: E402

PLAN = {
    "vqkd": ("vqkd", "vqkd-mnist", []),
    "decoder": ("decoder", "decoder-vqkd-mnist", ["tokenizer={shared}/vqkd"]),
    "vqgan": ("vqgan", "vqgan-mnist", ["loss.disc_start=0"]),
    "ar": ("ar", "ar-mnist", ["data.tokens={shared}/train.json", "data.val_tokens={shared}/val.json"]),
    "nar": ("nar", "nar-mnist", ["data.tokens={shared}/train.json", "data.val_tokens={shared}/val.json"]),
    "judge": ("judge", "judge-mnist", []),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--stages", default=",".join(PLAN))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=6)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results_compile.json"))
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    from semtok.pipelines.machine import machine_info

    work = Path(tempfile.mkdtemp(prefix="bench_compile_"))
    shared = work / "shared"  # one 1-step VQ-KD tokenizer and its token files for decoder / AR / masked
    run_child(ROOT, "vqkd", "vqkd-mnist", 1, 0, shared / "vqkd", [])
    for split in ("train", "val"):
        tokenize(ROOT, shared / "vqkd", split, shared / f"{split}.json")
    results: dict = {"machine": machine_info(), "steps": args.steps, "warmup": args.warmup, "stages": {}}
    for name in args.stages.split(","):
        kind, config, overrides = PLAN[name]
        overrides = [o.format(shared=shared) for o in overrides]
        row = {}
        for label, extra in (("eager", []), ("compiled", ["train.compile=true"])):
            row[label] = run_child(
                ROOT, kind, config, args.steps, args.warmup, work / label / name, [*overrides, *extra]
            )
            print(name, label, row[label], flush=True)
        eager, compiled = row["eager"], row["compiled"]
        row["speedup"] = eager["step_s_median"] / compiled["step_s_median"]
        saved = eager["step_s_median"] - compiled["step_s_median"]
        row["compile_cost_s"] = (
            compiled["setup_s"] + compiled["warmup_s"] - eager["setup_s"] - eager["warmup_s"]
        )
        row["break_even_steps"] = round(args.warmup + row["compile_cost_s"] / saved) if saved > 0 else None
        results["stages"][name] = row
    Path(args.out).write_text(json.dumps(results, indent=2))
    print("\n| stage | eager s/step | compiled s/step | speed-up | compile cost s | break-even steps |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in results["stages"].items():
        e, c = row["eager"], row["compiled"]
        print(
            f"| {name} | {e['step_s_median']:.3f} | {c['step_s_median']:.3f} | {row['speedup']:.2f}x | "
            f"{row['compile_cost_s']:.0f} | {row['break_even_steps']} |"
        )


if __name__ == "__main__":
    main()
