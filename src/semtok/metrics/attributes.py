"""Attributes read back from an image, for prompt-following scores (GenEval spirit) on captioned MNIST.

- colour: the mean RGB of the "ink" pixels (brightness above ``ink_threshold`` of the brightest pixel), then the
  nearest reference colour by the angle between RGB vectors (brightness-free, so faint strokes still count);
- size: the side of the ink's bounding box as a share of the image side, then the nearest reference size.
Images are ``[B, 3, H, W]`` float in [-1, 1] (as the tokenizers decode them).
"""

from __future__ import annotations

import torch

__all__ = ["ink_mask", "measure_colour", "measure_size"]


def ink_mask(images_B3HW: torch.Tensor, ink_threshold: float = 0.35) -> torch.Tensor:
    """Bool ``[B, H, W]``: pixels whose brightest channel exceeds ``ink_threshold`` of the image's brightest one."""
    value = ((images_B3HW.float() + 1) / 2).clamp(0, 1).amax(dim=1)
    peak = value.flatten(1).amax(dim=1).clamp_min(1e-6)
    return value > ink_threshold * peak[:, None, None]


def measure_colour(images_B3HW: torch.Tensor, colours: dict[str, tuple[int, int, int]]) -> list[str]:
    """The name of the reference colour (``name -> RGB in [0, 255]``) nearest to each image's ink."""
    rgb = ((images_B3HW.float() + 1) / 2).clamp(0, 1)
    mask = ink_mask(images_B3HW)[:, None].float()
    mean = (rgb * mask).sum(dim=(2, 3)) / mask.sum(dim=(2, 3)).clamp_min(1)
    names = list(colours)
    references = torch.nn.functional.normalize(
        torch.tensor([colours[n] for n in names], dtype=torch.float32), dim=1
    )
    nearest = (torch.nn.functional.normalize(mean, dim=1) @ references.T).argmax(dim=1)
    return [names[i] for i in nearest.tolist()]


def measure_size(images_B3HW: torch.Tensor, sizes: dict[str, float]) -> list[str]:
    """The name of the reference size (``name -> side share of the image``) nearest to each image's ink box."""
    mask = ink_mask(images_B3HW)
    height, width = mask.shape[1:]
    names = list(sizes)
    found = []
    for ink in mask:
        rows, cols = ink.any(dim=1).nonzero().flatten(), ink.any(dim=0).nonzero().flatten()
        if rows.numel() == 0:
            found.append(names[0])
            continue
        side = max((rows[-1] - rows[0] + 1) / height, (cols[-1] - cols[0] + 1) / width)
        found.append(min(names, key=lambda name: abs(sizes[name] - float(side))))
    return found
