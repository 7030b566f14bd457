"""Writing report figures: PNGs at one resolution, built headless.

Matplotlib runs headless: figures are built with ``matplotlib.figure.Figure`` (Agg canvas), never pyplot, so
nothing here opens a window or touches pyplot's global state.
"""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from semtok.hub.files import atomic_write

__all__ = ["DPI", "save_figure"]

DPI = 120


def save_figure(figure: Figure, out: str | os.PathLike) -> Path:
    """Write ``figure`` as a PNG at ``DPI`` to ``out`` (atomically; parent folders made); returns ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: figure.savefig(tmp, format="png", dpi=DPI))
    return out
