"""The bench suite's budget-sweep curves: gFID and class accuracy against tokenizer-side steps and seconds.

Built headless like every report figure (:mod:`semtok.visual.figure_file`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from semtok.errors import SemtokError
from semtok.visual.figure_file import save_figure

__all__ = ["plot_sweep", "sweep_figure"]

# (panel's y key, its label), (x key, its label): the four panels in reading order
PANELS = (
    (("gfid", "gFID (AR)"), ("tokenizer_side_steps", "tokenizer-side training steps")),
    (("gfid", "gFID (AR)"), ("tokenizer_side_seconds", "tokenizer-side seconds")),
    (("class_accuracy", "class accuracy (AR)"), ("tokenizer_side_steps", "tokenizer-side training steps")),
    (("class_accuracy", "class accuracy (AR)"), ("tokenizer_side_seconds", "tokenizer-side seconds")),
)


def sweep_figure(sweep: dict[str, list[dict[str, Any]]], labels: dict[str, str] | None = None) -> Figure:
    """Four panels (gFID vs steps and vs seconds, class accuracy vs steps and vs seconds; log x), one line with
    markers per row of ``sweep`` (``{row: [point, ...]}``, points as :func:`semtok.pipelines.suite.collect_sweep`
    writes them; a point's None values are left out), legend names from ``labels``."""
    if not sweep:
        raise SemtokError("sweep curves: no sweep points; run the sweep part first")
    labels = labels or {}
    figure = Figure(figsize=(10.0, 7.0), layout="constrained")
    axes = figure.subplots(2, 2).ravel()
    for ax, ((y, y_label), (x, x_label)) in zip(axes, PANELS, strict=True):
        drawn = False
        for i, (row, points) in enumerate(sweep.items()):
            pairs = sorted(
                (p[x], p[y]) for p in points if p.get(x) is not None and p.get(y) is not None and p[x] > 0
            )
            if pairs:
                xs, ys = zip(*pairs, strict=True)
                ax.plot(xs, ys, marker="o", color=f"C{i % 10}", label=labels.get(row, row), linewidth=1.4)
                drawn = True
        ax.set_xscale("log")
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.grid(alpha=0.3, which="both")
        if drawn:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no values yet", ha="center", va="center", transform=ax.transAxes)
    figure.suptitle("budget sweep: AR generation against the tokenizer-side budget")
    return figure


def plot_sweep(sweep: dict[str, list[dict[str, Any]]], labels: dict[str, str] | None, out: Path) -> Path:
    """Write :func:`sweep_figure` as a PNG at ``out``; returns ``out``."""
    return save_figure(sweep_figure(sweep, labels), out)
