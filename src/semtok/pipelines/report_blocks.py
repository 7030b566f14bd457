"""The suite report's building blocks: the block type and number formatting (:mod:`semtok.pipelines.report`)."""

from __future__ import annotations

from typing import Any

Block = tuple[str, Any]  # ("h2", text) | ("p", text) | ("table", (header, rows)) | ("img", (path, caption))


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: floats to ``digits`` places, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def mean_std(row: dict[str, Any], key: str, digits: int) -> str:
    """``row[key]`` ± ``row[key_std]`` (the mean and spread over seeds) as a table cell; a dash where absent."""
    mean, std = row.get(key), row.get(f"{key}_std")
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std is not None else f"{mean:.{digits}f}"
