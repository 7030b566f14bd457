"""A suite's results kept outside its output folder (``semtok bench --kept DIR``; ``make bench`` keeps them in the
repository, ``benchmarks/suite-mnist/``).

What is kept: the metric, summary, config and log files (JSON, JSON lines, YAML) of every *finished* unit (the
judges, every chain whose metric JSONs all exist, every finished sweep point; a chain's text-to-image folder once
its branch is finished) and the sample grids (PNG); never model weights, checkpoints, token files, TensorBoard
events, or the model folders' own files, but for the judges' model folders (:data:`KEPT_MODELS`, 1.2 MB each): the
classifier that scores every chain's class accuracy stays the same one across sessions and machines instead of
being trained again (the same recipe and seed trained on another machine gave val top-1 0.980 where the first had
0.978). A chain is about 100 KB, 450 KB with its grids. A suite run restores the
kept files into its output folder first (files already there win), so a kept chain is collected, not trained again
(:func:`semtok.pipelines.suite.pending_parts`), and keeps what it finishes after every row and at the end. This is
how a suite longer than one sitting (about 13 hours of a 2-core CPU for ``mnist``) accumulates over machines and
sessions. ``python -m semtok.pipelines.suite_keep OUT KEPT [--suite mnist]`` keeps a folder's finished units by
hand (while a suite runs in it, say)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from semtok.pipelines.suite_rows import GENERATORS, ROWS, SUITES, SWEEP_ROWS, Budget, chain_dir

KEPT_SUFFIXES = (".json", ".jsonl", ".yaml", ".png")
SKIPPED_FOLDERS = ("checkpoints", "tb", "tokens")
# what is drawn from these (report.md, report.html, figures/, sweep_curves.png) is not kept: `--collect-only` redraws it
TOP_LEVEL = ("results.json", "_shared")
KEPT_MODELS = ("judge/judge", "judge_captioned/judge")  # model folders kept whole: the judges' classifiers


def result_files(folder: Path, skip: tuple[str, ...] = ()) -> list[Path]:
    """The files to keep under ``folder``, relative to it, sorted: a suffix of :data:`KEPT_SUFFIXES`, not under
    a folder named in :data:`SKIPPED_FOLDERS`, a model folder (one holding ``model.safetensors``) or a top-level
    sub-folder named in ``skip``."""
    model_folders = {p.parent for p in folder.rglob("model.safetensors")}
    kept = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or path.suffix not in KEPT_SUFFIXES or relative.parts[0] in skip:
            continue
        if any(part in SKIPPED_FOLDERS for part in relative.parts[:-1]):
            continue
        if any(parent in model_folders for parent in path.parents):
            continue
        kept.append(relative)
    return kept


def finished_units(out: Path, budget: Budget) -> list[tuple[Path, tuple[str, ...]]]:
    """(folder relative to ``out``, its sub-folders left out) of every finished unit in a suite folder: the judges
    with a summary, the chains of every row with no part pending (their ``t2i`` folder left out until its branch
    is finished), the sweep points with no part pending."""
    from semtok.pipelines.suite import pending_parts  # suite.py imports this module
    from semtok.pipelines.suite_sweep import sweep_dir
    from semtok.pipelines.suite_t2i import chain_t2i_pending

    units: list[tuple[Path, tuple[str, ...]]] = [
        (Path(judge), ()) for judge in ("judge", "judge_captioned") if (out / judge / "summary.json").exists()
    ]
    for row in ROWS:
        for seed in budget.train_seeds:
            chain = chain_dir(out, row, seed)
            if chain.is_dir() and not pending_parts(chain, seed, tuple(GENERATORS), False):
                skip = ("t2i",) if chain_t2i_pending(chain, seed, False) else ()
                units.append((chain.relative_to(out), skip))
    for row in SWEEP_ROWS:
        for scale in budget.sweep:
            point = sweep_dir(out, row, budget, scale)
            if scale != 1.0 and point.is_dir() and not pending_parts(point, 0, ("ar",), False):
                units.append((point.relative_to(out), ()))
    return units


def keep_results(out: str | Path, kept: str | Path, budget: Budget) -> int:
    """Copy the files of every finished unit of the suite folder ``out`` (and its results.json and _shared/) into
    ``kept``, same layout, overwriting (``out`` is the newer); returns how many files were copied."""
    out, kept = Path(out), Path(kept)
    copied = 0
    units = [(Path(name), ()) for name in TOP_LEVEL if (out / name).is_dir()]
    for folder, skip in [*units, *finished_units(out, budget)]:
        for relative in result_files(out / folder, skip):
            copied += _copy(out / folder / relative, kept / folder / relative)
    for name in TOP_LEVEL:
        if (out / name).is_file():
            copied += _copy(out / name, kept / name)
    for model in KEPT_MODELS:
        if (out / model / "model.safetensors").is_file():
            for path in sorted(p for p in (out / model).iterdir() if p.is_file()):
                copied += _copy(path, kept / model / path.name)
    return copied


def restore_results(kept: str | Path, out: str | Path) -> int:
    """Copy every kept file absent from the suite folder ``out`` into it (files already there are left as they
    are); returns how many were copied (0 when ``kept`` does not exist yet)."""
    kept, out = Path(kept), Path(out)
    if not kept.is_dir():
        return 0
    copied = 0
    for path in sorted(p for p in kept.rglob("*") if p.is_file()):
        target = out / path.relative_to(kept)
        if not target.exists():
            copied += _copy(path, target)
    return copied


def _copy(source: Path, target: Path) -> int:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="keep a suite folder's finished units (keep_results)")
    parser.add_argument("out", help="the suite's output folder (runs/bench/suite-mnist)")
    parser.add_argument("kept", help="where to keep them (benchmarks/suite-mnist)")
    parser.add_argument("--suite", default="mnist", choices=list(SUITES))
    args = parser.parse_args(argv)
    print(f"kept {keep_results(args.out, args.kept, SUITES[args.suite])} files in {args.kept}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
