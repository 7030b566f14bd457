"""The masked-decoding picture: how a masked (MaskGIT / MAGE) proposal network fills in the token grid over its
``T`` parallel decoding steps.

One row per sample, one column per decoding step, then the final decoded sample. Each step's cell is the tokenizer's
decoding of the tokens known after that step, the positions still masked filled with code 0 (any valid code would
do) and then covered by a grey, hatched square per token cell (token ``(i, j)`` of an ``h x w`` grid covers rows
``i*H//h .. (i+1)*H//h`` and columns ``j*W//w .. (j+1)*W//w`` of the image). Figures are built headless
(:mod:`semtok.visual.figure_file`).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from matplotlib.figure import Figure

from semtok.errors import SemtokError
from semtok.generators.sampler import Sampler
from semtok.generators.sampling import SamplingConfig
from semtok.visual.figure_file import save_figure

__all__ = ["MaskedDecoding", "masked_decoding_figure", "masked_decoding_picture", "record_masked_decoding"]

GREY = 0.6  # the masked cells' grey, in [0, 1]
HATCH = 0.3  # the hatching lines' grey
VEIL = 0.8  # how much of a masked cell the grey covers (the rest: the placeholder's decoding, faintly)


class MaskedDecoding(NamedTuple):
    """What :func:`record_masked_decoding` gives.

    - ``grids``: ``[T, B, h, w]`` int64, the token grid after each step, ``-1`` where still masked.
    - ``steps``: ``[T, B, 3, H, W]`` float in [0, 1], each grid decoded (masked cells greyed; see the module
      docstring).
    - ``final``: ``[B, 3, H, W]`` float in [0, 1], the decoded samples (what ``Sampler.sample`` returns).
    - ``labels``: ``[B]`` int64.
    """

    grids: torch.Tensor
    steps: torch.Tensor
    final: torch.Tensor
    labels: torch.Tensor


def cell_mask(grid_Bhw: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bool ``[B, H, W]``: the pixels of the token cells that are masked (``-1``) in ``grid_Bhw``."""
    grid_h, grid_w = grid_Bhw.shape[1:]
    rows = torch.arange(height) * grid_h // height  # pixel row -> token row (cells i*H//h .. (i+1)*H//h)
    cols = torch.arange(width) * grid_w // width
    return (grid_Bhw < 0)[:, rows][:, :, cols]


def hatched(image_3HW: torch.Tensor, mask_HW: torch.Tensor, scale: int = 3, period: int = 6) -> torch.Tensor:
    """``image_3HW`` (in [0, 1]) upsampled ``scale`` times (nearest) with dark diagonal lines, every ``period``
    pixels, across the pixels where ``mask_HW`` is True: the hatching of the masked cells, drawn into the image."""
    image = image_3HW.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    mask = mask_HW.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    rows, cols = torch.meshgrid(torch.arange(mask.shape[0]), torch.arange(mask.shape[1]), indexing="ij")
    lines = mask & ((rows + cols) % period == 0)
    return torch.where(lines, torch.full_like(image, HATCH), image)


@torch.inference_mode()
def record_masked_decoding(
    sampler: Sampler, labels_B: torch.Tensor, sampling: SamplingConfig | None = None, seed: int = 0
) -> MaskedDecoding:
    """Sample one image per label with a masked ``sampler`` (one batch, ``seed``) and decode every step's grid."""
    if sampler.family != "masked":
        raise SemtokError(
            f"masked-decoding picture: '{sampler.model_dir}' holds a {sampler.kind!r} model, not a masked one"
        )
    sampling = sampling or SamplingConfig()
    labels_B = torch.as_tensor(labels_B, dtype=torch.long).reshape(-1)
    if labels_B.numel() == 0:
        raise SemtokError("masked-decoding picture: expected at least one label")
    record: list[torch.Tensor] = []
    images, ids = sampler.sample(labels_B, sampling, seed, batch_size=labels_B.numel(), record=record)
    grids = torch.stack(record)  # one batch: exactly one grid per step
    if not torch.equal(grids[-1], ids.cpu()):
        raise SemtokError("masked-decoding picture: the last recorded grid is not the sampled one")
    height, width = images.shape[-2:]
    steps = []
    for grid in grids:
        decoded = sampler.tokenizer.decode(grid.clamp_min(0).to(ids.device)).clamp(-1, 1).cpu()
        decoded = (decoded.float() + 1) / 2
        veil = cell_mask(grid, height, width)[:, None].float() * VEIL
        steps.append(decoded * (1 - veil) + GREY * veil)
    final = (images.float().cpu() + 1) / 2
    return MaskedDecoding(grids, torch.stack(steps), final, labels_B)


def masked_decoding_figure(
    decoding: MaskedDecoding, class_names: list[str] | None = None, title: str = ""
) -> Figure:
    """The picture: ``B`` rows x ``T + 1`` columns of axes (steps, then the decoded sample); each column titled
    with its step and how many tokens are still masked, each row labelled with its class; masked cells hatched."""
    count, batch = decoding.grids.shape[:2]
    height, width = decoding.final.shape[-2:]
    cell = 0.9
    figure = Figure(figsize=(cell * (count + 1) + 0.6, cell * batch + 0.5 + (0.3 if title else 0.0)))
    axes = figure.subplots(batch, count + 1, squeeze=False)
    names = class_names or []
    for b in range(batch):
        for t in range(count + 1):
            ax = axes[b, t]
            pixels = decoding.steps[t, b] if t < count else decoding.final[b]
            if t < count:
                pixels = hatched(pixels, cell_mask(decoding.grids[t, b : b + 1], height, width)[0])
            ax.imshow(pixels.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if b == 0:
                masked = int((decoding.grids[t, 0] < 0).sum()) if t < count else 0  # the same in every row
                ax.set_title(f"step {t + 1}\n{masked} masked" if t < count else "decoded", fontsize=7)
            if t == 0:
                label = int(decoding.labels[b])
                ax.set_ylabel(names[label] if label < len(names) else str(label), fontsize=7)
    figure.subplots_adjust(left=0.04, right=0.99, bottom=0.02, top=0.82 if title else 0.86, wspace=0.05)
    if title:
        figure.suptitle(title, fontsize=9)
    return figure


def masked_decoding_picture(
    sampler: Sampler,
    labels_B: torch.Tensor,
    out: str | Path,
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    title: str = "",
) -> Path:
    """Draw samples for ``labels_B`` with a masked ``sampler``, recording every decoding step, and save the picture
    (:func:`masked_decoding_figure`) as a PNG at ``out``; returns ``out``."""
    decoding = record_masked_decoding(sampler, labels_B, sampling, seed)
    return save_figure(masked_decoding_figure(decoding, sampler.class_names, title), out)
