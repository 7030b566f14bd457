"""The whole-pipeline verbs: `semtok bench` (the paper's comparison) and `semtok demo`."""

from __future__ import annotations

import argparse

from semtok.cli import checks
from semtok.errors import SemtokError


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    bench = verbs.add_parser(
        "bench",
        help="the paper's comparison at small scale: every tokenizer + the same AR and masked models, a report",
    )
    bench.add_argument("--suite", default="mnist", choices=["mnist", "quick"], help="budgets (default mnist)")
    bench.add_argument(
        "--quick", action="store_true", help="same as --suite quick (minutes, smoke-test budgets)"
    )
    bench.add_argument("--rows", nargs="+", help="only these rows (default: all)")
    bench.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=None,
        help="run only the chains of these training seeds (default: all of the suite's; the report collects "
        "every chain found)",
    )
    bench.add_argument("--out", default=None, help="output folder (default runs/bench/suite-SUITE)")
    bench.add_argument("--progress", action="store_true", help="progress bars for every stage")
    bench.add_argument(
        "--no-t2i",
        action="store_true",
        help="skip the main rows' text-to-image branch (captioned MNIST: a second tokenizer and a text AR model "
        "per row; roughly the class-conditional main rows' time again)",
    )
    bench.add_argument(
        "--parts",
        default="main,ablation,sweep,t2i",
        help="comma list of the parts to run, always in the order main, sweep, ablation, t2i (default all): main "
        "rows (every training seed, AR and masked), the budget sweep (VQGAN, VQ-KD, Cluster), the teacher "
        "ablation rows, the text-to-image branch; the report shows every part with results",
    )
    bench.add_argument(
        "--kept",
        default=None,
        help="a folder of kept results (make bench: benchmarks/suite-mnist): restored into --out first, so the "
        "chains kept there are collected, not trained again; every chain, sweep point and judge finished is "
        "kept there (metric / summary / log JSONs, configs, sample grids; no weights)",
    )
    bench.add_argument(
        "--collect-only",
        action="store_true",
        help="train and evaluate nothing: collect what --out (and --kept) hold into results.json and the report",
    )

    demo = verbs.add_parser(
        "demo",
        help="tokenizer -> pixel decoder -> AR -> samples and report on the embedded default (MNIST-5k)",
    )
    demo.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    demo.add_argument("--steps", type=int, default=None, help="training steps (default: the config's)")
    demo.add_argument(
        "--tokenizer",
        choices=("vqkd", "cluster"),
        default="vqkd",
        help="the IU tokenizer: vqkd (distilled from the teacher, default) or cluster (k-means of its features: "
        "a 1-minute build, higher class accuracy, worse gFID)",
    )
    demo.add_argument(
        "--seed",
        type=int,
        default=0,
        help="training seed of the tokenizer, decoder and AR model (default 0; the judge and sampling stay fixed)",
    )
    demo.add_argument(
        "--no-fid", action="store_true", help="skip rFID / gFID / precision-recall (fast check)"
    )
    demo.add_argument("--no-progress", action="store_true")


def cmd_bench(args: argparse.Namespace) -> int:
    suite = "quick" if args.quick else args.suite
    out = args.out or f"runs/bench/suite-{suite}"
    checks.output_dir(out, "--out")
    from semtok.pipelines.suite import PARTS, ROWS, run_suite

    unknown = [row for row in args.rows or [] if row not in ROWS]
    if unknown:
        raise SemtokError(f"--rows: unknown {unknown} (known: {list(ROWS)})")
    parts = [part.strip() for part in args.parts.split(",") if part.strip()]
    if not parts or any(part not in PARTS for part in parts):
        raise SemtokError(f"--parts: expected a comma list of {list(PARTS)}, got {args.parts!r}")
    checks.output_dir(args.kept, "--kept")
    run_suite(
        suite,
        out,
        args.rows,
        progress=args.progress,
        t2i=not args.no_t2i,
        parts=tuple(parts),
        kept=args.kept,
        collect_only=args.collect_only,
        seeds=args.seeds,
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Embedded default end to end: tokenizer -> pixel decoder -> AR -> samples -> metrics -> report.md."""
    checks.output_dir(args.out, "--out")
    checks.positive_int(args.steps, "--steps")
    checks.non_negative_int(args.seed, "--seed")

    from semtok.pipelines.demo import run_demo

    run_demo(
        args.out,
        args.steps,
        progress=not args.no_progress,
        fid=not args.no_fid,
        tokenizer=args.tokenizer,
        seed=args.seed,
    )
    return 0


COMMANDS = {"bench": cmd_bench, "demo": cmd_demo}
