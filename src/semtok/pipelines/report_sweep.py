"""The suite report's budget-sweep section: its table and curves (:mod:`semtok.pipelines.report`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from semtok.pipelines.report_blocks import Block, fmt


def sweep_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One line per sweep point: row, multiplier, tokenizer-side steps and seconds, rFID, probe, gFID, class acc."""
    header = [
        "tokenizer",
        "multiplier",
        "tokenizer-side steps",
        "tokenizer-side seconds",
        "rFID",
        "probe top-1",
        "FID_AR",
        "class acc. (AR)",
    ]
    from semtok.pipelines.suite import LABELS

    labels = {name: row.get("label", name) for name, row in results.get("rows", {}).items()}
    rows = []
    for name, points in (results.get("sweep") or {}).items():
        for point in points:
            steps = fmt(point.get("tokenizer_side_steps"))
            if point.get("kmeans_iters") is not None:
                steps += f" (+ {point['kmeans_iters']} k-means iterations)"
            rows.append(
                [
                    labels.get(name, LABELS.get(name, name)),
                    f"{point['multiplier']:.2f}",
                    steps,
                    fmt(point.get("tokenizer_side_seconds"), 1),
                    fmt(point.get("rfid"), 2),
                    fmt(point.get("probe_top1")),
                    fmt(point.get("gfid"), 2),
                    fmt(point.get("class_accuracy")),
                ]
            )
    return header, rows


def sweep_blocks(out: Path, results: dict[str, Any]) -> list[Block]:
    """The budget-sweep section: the table and the curves picture (``OUT/sweep_curves.png``), or "not run yet"."""
    blocks: list[Block] = [("h2", "Budget sweep: generation against the tokenizer-side budget")]
    sweep = results.get("sweep") or {}
    if not any(sweep.values()):
        return blocks + [("p", "Not run yet (semtok bench --parts sweep).")]
    multipliers = ", ".join(f"{m:.2f}" for m in results.get("budget", {}).get("sweep", ()))
    blocks += [
        ("table", sweep_table(results)),
        (
            "p",
            "Each point: the seed-0 chain of the row with the tokenizer-side budget scaled by the multiplier "
            f"({multipliers}): tokenizer and pixel-decoder steps (Cluster, which is a k-means build: the decoder "
            "steps and the k-means iterations), then the AR model at its normal budget and its generation metrics "
            "(sampling seed 0). Tokenizer-side steps: tokenizer + decoder training steps; seconds: those stages' "
            "wall time on this machine. The multiplier-1 point is the main table's seed-0 chain.",
        ),
    ]
    curves = out / "sweep_curves.png"
    if curves.exists():
        blocks.append(
            ("img", (curves, "gFID and class accuracy (AR) against tokenizer-side steps and seconds"))
        )
    return blocks
