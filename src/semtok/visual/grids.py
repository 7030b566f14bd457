"""Image grids: originals beside their reconstructions."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from semtok.errors import SemtokError
from semtok.tokenizers.base import Tokenizer


@torch.no_grad()
def reconstruction_grid(tokenizer: Tokenizer, images_B3HW: torch.Tensor, per_row: int = 8) -> torch.Tensor:
    """A [3, H', W'] grid in [0, 1]: rows of originals, each followed by a row of their reconstructions."""
    size = tokenizer.config.image_size
    if images_B3HW.shape[-2:] != (size, size):
        raise SemtokError(
            f"images are {tuple(images_B3HW.shape[-2:])} but this tokenizer takes {size}x{size} images"
        )
    recon = tokenizer.decode(tokenizer.encode(images_B3HW))
    per_row = min(per_row, images_B3HW.shape[0])
    rows = []
    for start in range(0, images_B3HW.shape[0], per_row):
        rows += [images_B3HW[start : start + per_row], recon[start : start + per_row]]
    pairs = torch.cat(rows)
    return make_grid((pairs.clamp(-1, 1) + 1) / 2, nrow=per_row, padding=2, pad_value=1.0)


def save_grid(grid_3HW: torch.Tensor, path: str | Path) -> Path:
    """Write a [3, H, W] grid in [0, 1] as an image (format from the file name, e.g. .png)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(grid_3HW, str(path))
    return path
