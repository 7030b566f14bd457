"""The bench suite's budget sweep (:mod:`semtok.pipelines.suite`): seed-0 chains with the tokenizer-side budget
scaled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from semtok.pipelines.suite_collect import collect_chain
from semtok.pipelines.suite_rows import FEATURE_KINDS, ROWS, Budget, chain_dir, kmeans_iters, scaled


def sweep_dir(out: Path, row: str, budget: Budget, scale: float) -> Path:
    """A sweep point's chain: ``OUT/sweep/ROW/x{STEPS}`` (STEPS: the scaled tokenizer steps); the multiplier-1 point
    is the row's seed-0 chain ``OUT/ROW/seed0``."""
    if scale == 1.0:
        return chain_dir(out, row, 0)
    return out / "sweep" / row / f"x{scaled(budget.tokenizer_steps, scale)}"


def run_sweep(row: str, out: Path, budget: Budget, judge_dir: Path, progress: bool) -> list[dict[str, Any]]:
    """The budget sweep of ``row`` (one of :data:`SWEEP_ROWS`): for each multiplier of ``budget.sweep`` the seed-0
    chain with the tokenizer and decoder steps scaled (Cluster: the decoder steps and the k-means iterations), the
    AR model at its normal budget, its generation metrics under sampling seed 0; no masked model, text-to-image
    branch or grids. The multiplier-1 point is the row's seed-0 chain (reused, not trained again; run here, AR
    only, when the main part has not run it yet). Returns :func:`collect_sweep`."""
    from semtok.pipelines.suite import run_chain  # the chain runner (suite.py imports this module)

    for scale in budget.sweep:
        run_chain(
            row, sweep_dir(out, row, budget, scale), budget, judge_dir, progress, 0, ("ar",), False, scale
        )
    return collect_sweep(row, out, budget)


def collect_sweep(row: str, out: Path, budget: Budget) -> list[dict[str, Any]]:
    """The sweep points of ``row`` that have results, sorted by tokenizer-side steps: multiplier, steps (tokenizer,
    decoder, k-means iterations for Cluster; ``tokenizer_side_steps``: tokenizer + decoder training steps, for
    Cluster the decoder's), ``tokenizer_side_seconds`` (tokenizer + decoder stages of its times.json; None where
    not recorded), gFID, class accuracy, probe top-1, rFID."""
    kind = ROWS[row][0]
    points = []
    for scale in budget.sweep:
        folder = sweep_dir(out, row, budget, scale)
        chain = collect_chain(folder, 0)
        if not chain:
            continue
        tokenizer_steps = None if kind == "cluster" else scaled(budget.tokenizer_steps, scale)
        decoder_steps = scaled(budget.decoder_steps, scale) if kind in FEATURE_KINDS else None
        times = chain["times"]
        seconds = [times[s] for s in ("tokenizer", "decoder") if s in times]
        points.append(
            {
                "multiplier": round(scale, 4),
                "dir": str(folder.relative_to(out)),
                "tokenizer_steps": tokenizer_steps,
                "decoder_steps": decoder_steps,
                "kmeans_iters": kmeans_iters(scale) if kind == "cluster" else None,
                "tokenizer_side_steps": (tokenizer_steps or 0) + (decoder_steps or 0),
                "tokenizer_side_seconds": round(sum(seconds), 1) if "tokenizer" in times else None,
                "gfid": chain.get("gfid"),
                "class_accuracy": chain.get("class_accuracy"),
                "probe_top1": chain.get("probe_top1"),
                "rfid": chain.get("rfid"),
            }
        )
    return sorted(points, key=lambda p: p["tokenizer_side_steps"])
