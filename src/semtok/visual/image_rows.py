"""Put PNG pictures together: stacked vertically or side by side (the report's combined sample grids)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image


def stack_images(paths: list[Path], out: Path) -> Path:
    """Stack PNGs vertically (same width) into one image."""
    images = [Image.open(p).convert("RGB") for p in paths]
    width = max(i.width for i in images)
    canvas = Image.new("RGB", (width, sum(i.height for i in images)), "white")
    top = 0
    for image in images:
        canvas.paste(image, (0, top))
        top += image.height
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def side_by_side(paths: list[Path], out: Path, gap: int = 12) -> Path:
    """Put PNGs next to each other (tops aligned, ``gap`` white pixels between) into one image."""
    images = [Image.open(p).convert("RGB") for p in paths]
    width = sum(i.width for i in images) + gap * (len(images) - 1)
    canvas = Image.new("RGB", (width, max(i.height for i in images)), "white")
    left = 0
    for image in images:
        canvas.paste(image, (left, 0))
        left += image.width + gap
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
