"""Training curves from ``log.jsonl``: one subplot per logged scalar, one line per run, x = step.

Figures are built headless (see :mod:`semtok.visual.figure_file`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from matplotlib.figure import Figure

from semtok.errors import SemtokError
from semtok.visual.figure_file import DPI, save_figure

__all__ = ["curves_figure", "plot_training_curves", "read_log"]

LOG_FILE = "log.jsonl"
SKIPPED_KEYS = ("step", "lr")


def _log_path(run_dir: str | os.PathLike) -> Path:
    path = Path(run_dir)
    if path.is_file():
        return path
    if not path.is_dir():
        raise SemtokError(f"run folder '{path}' does not exist")
    if not (path / LOG_FILE).is_file():
        raise SemtokError(f"run folder '{path}' has no {LOG_FILE}")
    return path / LOG_FILE


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_log(run_dir: str | os.PathLike) -> dict[str, tuple[list[int], list[float]]]:
    """The scalars of a run's ``log.jsonl``: ``{key: (steps, values)}``, steps ascending.

    Args:
        run_dir: a run folder holding ``log.jsonl`` (or the path of a ``.jsonl`` file itself). Each line is a JSON
            object ``{"step": int, "<key>": float, ...}``.

    Returns:
        For every key with a numeric (int / float, not bool) value on at least one line, except ``"step"``: the
        steps (ints) and values (floats; NaN / inf kept as they are) of the lines that carry it. Lines without
        the key, without an integer ``step``, or with a non-numeric value are skipped. A step logged twice (a
        resumed run appends to the same file) keeps the later value. Keys appear in the order first seen.

    Raises:
        SemtokError: the folder or its ``log.jsonl`` is missing; a line (other than a half-written last line) is
            not a JSON object; no line has a numeric key.
    """
    path = _log_path(run_dir)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    series: dict[str, dict[int, float]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # a run still writing (or killed mid-write) leaves a partial last line
                continue
            raise SemtokError(f"'{path}' line {number}: expected a JSON object, got {line[:60]!r}") from None
        if not isinstance(record, dict):
            raise SemtokError(f"'{path}' line {number}: expected a JSON object, got {type(record).__name__}")
        step = record.get("step")
        if not isinstance(step, int) or isinstance(step, bool):
            continue
        for key, value in record.items():
            if key != "step" and _is_number(value):
                series.setdefault(key, {})[step] = float(value)
    if not series:
        raise SemtokError(f"run folder '{path.parent}': {path.name} has no numeric keys logged with a step")
    return {key: (sorted(by_step), [by_step[s] for s in sorted(by_step)]) for key, by_step in series.items()}


def curves_figure(
    logs: dict[str, dict[str, tuple[list[int], list[float]]]], keys: list[str] | None = None, title: str = ""
) -> Figure:
    """The training-curve figure of :func:`plot_training_curves` from already-read logs (``{run: read_log(...)}``).

    One subplot per key (up to 3 per row), one line per run that logged the key; a run's series of fewer than
    20 points is drawn with markers, so an end-of-run value (e.g. ``loss/val_nll``) shows as a dot.
    """
    if not logs:
        raise SemtokError("plot_training_curves: runs is empty; expected {name: run folder}")
    if keys is None:
        keys = []
        for log in logs.values():
            keys += [key for key in log if key not in SKIPPED_KEYS and key not in keys]
        if not keys:
            raise SemtokError(f"runs {list(logs)} log no numeric keys besides {list(SKIPPED_KEYS)}")
    else:
        keys = list(keys)
        if not keys:
            raise SemtokError("plot_training_curves: keys is empty; expected at least one logged key or None")
        present = {key for log in logs.values() for key in log}
        absent = [key for key in keys if key not in present]
        if absent:
            raise SemtokError(
                f"keys {absent} are logged by none of the runs {list(logs)} (logged: {sorted(present)})"
            )
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    figure = Figure(figsize=(4.2 * cols, 3.0 * rows + (0.4 if title else 0.0)), dpi=DPI, layout="constrained")
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    colours = {run: f"C{i % 10}" for i, run in enumerate(logs)}
    for ax, key in zip(axes, keys):
        for run, log in logs.items():
            if key not in log:
                continue
            steps, values = log[key]
            ax.plot(
                steps,
                values,
                color=colours[run],
                label=run,
                marker="o" if len(steps) < 20 else None,
                markersize=3,
                linewidth=1.2,
            )
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    if title:
        figure.suptitle(title)
    return figure


def plot_training_curves(
    runs: dict[str, Path], out: Path, keys: list[str] | None = None, title: str = ""
) -> Path:
    """Plot logged scalars of several runs against the step and write a PNG.

    Args:
        runs: ``{legend name: run folder}``; each folder holds ``log.jsonl`` (see :func:`read_log`).
        out: the PNG to write (parent folders are made; written atomically).
        keys: the scalars to plot, one subplot each; default every key logged by at least one run, except
            ``"lr"``, in the order first seen. Runs that did not log a key have no line in its subplot.
        title: a title over the whole figure.

    Returns:
        ``out``.

    Raises:
        SemtokError: ``runs`` is empty; a folder has no ``log.jsonl`` or no numeric key (the message names the
            folder); a requested key is logged by no run.
    """
    logs = {name: read_log(folder) for name, folder in runs.items()}
    return save_figure(curves_figure(logs, keys, title), out)
