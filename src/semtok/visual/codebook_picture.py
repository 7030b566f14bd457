"""The paper's codebook picture: for each tokenizer, its most used codes and, per code, image patches whose
token is that code (the region the token cell covers, with some context around it, the cell outlined in red).

Figures are built headless (see :mod:`semtok.visual.figure_file`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from semtok.errors import SemtokError
from semtok.tokenizers.base import Tokenizer
from semtok.visual.figure_file import DPI, save_figure

__all__ = [
    "CodePatches",
    "CodebookPanel",
    "code_patches",
    "codebook_figure",
    "codebook_panel",
    "codebook_picture",
]


class CodePatches(NamedTuple):
    """Image patches whose token is one code (from :func:`code_patches`).

    - ``pixels``: ``[P, 3, ph, pw]``, same dtype and value range as the images they were cut from.
    - ``boxes``: ``[P, 4]`` int64 ``(top, left, bottom, right)`` of the token cell inside each patch (exclusive
      bottom / right), i.e. ``pixels[p, :, top:bottom, left:right]`` is exactly the cell.
    - ``cells``: ``[P, 3]`` int64 ``(image index n, row i, column j)`` of each token in ``ids_NHW``.
    """

    pixels: torch.Tensor
    boxes: torch.Tensor
    cells: torch.Tensor


def _cell_bounds(index: int, cells: int, pixels: int) -> tuple[int, int]:
    return index * pixels // cells, (index + 1) * pixels // cells


def _window(start: int, stop: int, size: int, pixels: int) -> int:
    """Top (or left) of a ``size`` window centred on ``[start, stop)``, shifted to lie inside ``[0, pixels)``."""
    return min(max(0, math.floor((start + stop - size) / 2)), pixels - size)


def code_patches(
    ids_NHW: torch.Tensor,
    images_N3HW: torch.Tensor,
    code: int,
    patches: int,
    context: float = 2.0,
    seed: int | None = 0,
) -> CodePatches:
    """Cut out the image regions whose token is ``code``.

    Token ``(n, i, j)`` of an ``h x w`` grid covers rows ``i*H//h .. (i+1)*H//h`` and columns
    ``j*W//w .. (j+1)*W//w`` of image ``n`` (for 32 px and an 8x8 grid: a 4x4 cell). Each patch is a window of
    ``round(context * H / h) x round(context * W / w)`` pixels (at least one cell, at most the image) centred on
    the cell and shifted, where it would leave the image, to lie inside it, so all patches share one size.

    Which occurrences: occurrences in distinct images first (at most one per image until every image holding the
    code has given one), then further ones. ``seed=None`` takes them in raster order ``(n, i, j)``; an int
    shuffles them first with a ``torch.Generator`` seeded by it (so patches come from across the data set, not
    from its first images). Fewer than ``patches`` occurrences: all of them.

    Args:
        ids_NHW: token ids ``[N, h, w]``, integer.
        images_N3HW: the encoded images ``[N, 3, H, W]`` (any dtype / range; patches keep it).
        code: the code id.
        patches: how many patches at most (>= 1).
        context: window side in cells (>= 1; 1 gives the exact cell).
        seed: see above.

    Returns:
        :class:`CodePatches` with ``P = min(patches, occurrences)`` (``P = 0`` gives empty tensors).
    """
    if ids_NHW.ndim != 3 or ids_NHW.is_floating_point() or ids_NHW.dtype == torch.bool:
        raise SemtokError(
            f"ids: expected an integer [N, h, w] tensor, got {ids_NHW.dtype} {list(ids_NHW.shape)}"
        )
    if images_N3HW.ndim != 4 or images_N3HW.shape[1] != 3 or images_N3HW.shape[0] != ids_NHW.shape[0]:
        raise SemtokError(
            f"images: expected [N, 3, H, W] with N = {ids_NHW.shape[0]} (as ids), got {list(images_N3HW.shape)}"
        )
    if patches < 1:
        raise SemtokError(f"patches: expected an int >= 1, got {patches}")
    if not context >= 1:
        raise SemtokError(f"context: expected a number >= 1 (window side in cells), got {context}")
    grid_h, grid_w = ids_NHW.shape[1:]
    height, width = images_N3HW.shape[2:]
    if grid_h > height or grid_w > width:
        raise SemtokError(f"ids grid {grid_h}x{grid_w} is finer than the images ({height}x{width})")
    win_h = min(height, max(math.ceil(height / grid_h), round(context * height / grid_h)))
    win_w = min(width, max(math.ceil(width / grid_w), round(context * width / grid_w)))

    where = (ids_NHW == code).nonzero()  # [M, 3] in raster order
    if seed is not None and len(where):
        generator = torch.Generator().manual_seed(seed)
        where = where[torch.randperm(len(where), generator=generator)]
    seen: set[int] = set()
    first, rest = [], []
    for row in where.tolist():
        (rest if row[0] in seen else first).append(row)
        seen.add(row[0])
    chosen = (first + rest)[:patches]

    pixels, boxes = [], []
    for n, i, j in chosen:
        y0, y1 = _cell_bounds(i, grid_h, height)
        x0, x1 = _cell_bounds(j, grid_w, width)
        top, left = _window(y0, y1, win_h, height), _window(x0, x1, win_w, width)
        pixels.append(images_N3HW[n, :, top : top + win_h, left : left + win_w])
        boxes.append([y0 - top, x0 - left, y1 - top, x1 - left])
    if not chosen:
        return CodePatches(
            images_N3HW.new_zeros((0, 3, win_h, win_w)),
            torch.zeros((0, 4), dtype=torch.long),
            torch.zeros((0, 3), dtype=torch.long),
        )
    return CodePatches(
        torch.stack(pixels), torch.tensor(boxes, dtype=torch.long), torch.tensor(chosen, dtype=torch.long)
    )


@dataclass
class CodebookPanel:
    """One tokenizer's part of the codebook picture (from :func:`codebook_panel`).

    ``codes``: the code ids shown, most used first; ``counts``: how many tokens of the encoded images each is;
    ``patches``: one :class:`CodePatches` per code (pixels in [-1, 1]); ``num_codes`` / ``codes_used`` /
    ``tokens``: codebook size, distinct codes in the ids, and total tokens encoded.
    """

    name: str
    codes: list[int]
    counts: list[int]
    patches: list[CodePatches]
    num_codes: int
    codes_used: int
    tokens: int


def codebook_panel(
    name: str,
    ids_NHW: torch.Tensor,
    images_N3HW: torch.Tensor,
    num_codes: int,
    codes: int = 6,
    patches: int = 8,
    context: float = 2.0,
    seed: int = 0,
) -> CodebookPanel:
    """Pick the ``codes`` most frequent codes of ``ids_NHW`` (ties: the lower id) and cut ``patches`` patches of each.

    Deterministic: the codes are the top of the counts (no sampling); the patches follow :func:`code_patches`
    with ``seed``. Codes that never occur are not shown, so fewer than ``codes`` rows appear when fewer are used.
    ``images_N3HW`` are in [-1, 1].
    """
    if codes < 1:
        raise SemtokError(f"codes: expected an int >= 1, got {codes}")
    flat = ids_NHW.reshape(-1).long()
    if flat.numel() == 0:
        raise SemtokError(f"codebook picture of '{name}': no tokens to count (no images)")
    counts = torch.bincount(flat, minlength=num_codes)
    ordered, order = torch.sort(counts, descending=True, stable=True)
    top = [int(c) for c, n in zip(order[:codes], ordered[:codes]) if n > 0]
    return CodebookPanel(
        name=name,
        codes=top,
        counts=[int(counts[c]) for c in top],
        patches=[code_patches(ids_NHW, images_N3HW, c, patches, context, seed) for c in top],
        num_codes=num_codes,
        codes_used=int((counts > 0).sum()),
        tokens=flat.numel(),
    )


def _panel_image(panel: CodebookPanel, columns: int, pad: int) -> tuple[torch.Tensor, list, int]:
    """[H, W, 3] float in [0, 1] (white gaps, grey where a code has fewer patches), outline boxes, tile size."""
    win_h, win_w = (int(s) for s in panel.patches[0].pixels.shape[-2:])
    scale = max(1, math.ceil(48 / max(win_h, win_w)))  # nearest upsampling so small patches stay visible
    tile_h, tile_w = win_h * scale, win_w * scale
    rows = len(panel.codes)
    canvas = torch.ones(rows * (tile_h + pad) + pad, columns * (tile_w + pad) + pad, 3)
    outlines = []
    for r, found in enumerate(panel.patches):
        for c in range(columns):
            top, left = pad + r * (tile_h + pad), pad + c * (tile_w + pad)
            if c >= len(found.pixels):
                canvas[top : top + tile_h, left : left + tile_w] = 0.85
                continue
            tile = (found.pixels[c].float().clamp(-1, 1) + 1) / 2
            tile = tile.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
            canvas[top : top + tile_h, left : left + tile_w] = tile.permute(1, 2, 0)
            y0, x0, y1, x1 = (int(v) * scale for v in found.boxes[c])
            outlines.append((left + x0, top + y0, x1 - x0, y1 - y0))
    return canvas, outlines, tile_h + pad


def codebook_figure(panels: list[CodebookPanel], title: str = "", outline: bool = True) -> Figure:
    """The codebook picture: one axes per panel, side by side; rows = codes (labelled with id and share of
    tokens), columns = patches; each token cell outlined in red when ``outline``."""
    if not panels:
        raise SemtokError("codebook picture: no tokenizers given; expected {name: tokenizer folder}")
    columns = max(len(p.pixels) for panel in panels for p in panel.patches)
    columns = max(columns, 1)
    pad = 2
    images = [_panel_image(panel, columns, pad) for panel in panels]
    widths = [0.55 * columns + 1.2 for _ in panels]
    height = 0.55 * max(len(panel.codes) for panel in panels) + 1.0 + (0.3 if title else 0.0)
    figure = Figure(figsize=(sum(widths), height), dpi=DPI, layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False, width_ratios=widths)[0]
    for ax, panel, (canvas, outlines, row_height) in zip(axes, panels, images):
        ax.imshow(canvas.numpy(), interpolation="nearest")
        if outline:
            for x, y, w, h in outlines:
                ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor="red", linewidth=0.8))
        ax.set_xticks([])
        ax.set_yticks([pad + r * row_height + (row_height - pad) / 2 for r in range(len(panel.codes))])
        ax.set_yticklabels(
            [f"#{code}\n{count / panel.tokens:.1%}" for code, count in zip(panel.codes, panel.counts)],
            fontsize=7,
        )
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(f"{panel.name}\n{panel.codes_used}/{panel.num_codes} codes used", fontsize=9)
    if title:
        figure.suptitle(title)
    return figure


def _encode_dataset(
    tokenizer: Tokenizer, data: str, split: str, max_images: int, batch_size: int, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """ids [N, h, w] int64 and images [N, 3, H, W] float16 in [-1, 1] of a seeded subset of the data set."""
    from semtok.data.build import build_dataset

    size = int(tokenizer.config.image_size)
    dataset = build_dataset(data, split, size, augment="none")
    if len(dataset) == 0:
        raise SemtokError(f"data {data!r} split {split!r} has no images")
    generator = torch.Generator().manual_seed(0)
    indices = torch.randperm(len(dataset), generator=generator)[:max_images].sort().values
    tokenizer = tokenizer.to(device).eval()
    all_ids, all_images = [], []
    with torch.inference_mode():
        for start in range(0, len(indices), batch_size):
            batch = torch.stack([dataset[int(i)][0] for i in indices[start : start + batch_size]])
            ids = tokenizer.encode(batch.to(device)).cpu()
            if tuple(ids.shape[1:]) != tuple(tokenizer.grid_size):
                raise SemtokError(
                    f"tokenizer gave ids {list(ids.shape)}, not the grid {tuple(tokenizer.grid_size)} it states"
                )
            all_ids.append(ids)
            all_images.append(batch.half())  # [-1, 1]; half precision is plenty for display, halves memory
    return torch.cat(all_ids), torch.cat(all_images)


def codebook_picture(
    tokenizers: dict[str, str | Path | Tokenizer],
    data: str,
    out: Path,
    split: str = "val",
    codes: int = 6,
    patches: int = 8,
    max_images: int = 500,
    seed: int = 0,
    *,
    context: float = 2.0,
    batch_size: int = 64,
    device: str = "cpu",
    title: str = "",
) -> Path:
    """The paper's codebook picture: per tokenizer, its most used codes and image patches assigned to each.

    For each tokenizer (a run folder holding ``tokenizer/``, a tokenizer folder, or a loaded
    :class:`~semtok.tokenizers.Tokenizer`), up to ``max_images`` images of
    ``build_dataset(data, split, config.image_size, augment="none")`` (a random subset seeded with 0, the same for
    every tokenizer of one image size, in data-set order) are encoded in batches under ``torch.inference_mode`` to
    ids ``[N, h, w]``. The ``codes`` most frequent codes are shown (deterministic: the top counts, ties to the
    lower id; not a sampled choice), one row each, labelled with its id and its share of all tokens. Each row
    holds ``patches`` patches (:func:`code_patches`, occurrences in distinct images first, shuffled with
    ``seed``): a window of ``context`` x the token cell (cell = image_size / grid, e.g. 4x4 px for 32 px and an
    8x8 grid) centred on the cell and kept inside the image, upsampled (nearest) to about 48 px, the cell outlined
    in red. Panels sit side by side, titled with the tokenizer's name and how many of its codes the images used.

    Args:
        tokenizers: ``{name: folder or tokenizer}``, in the order the panels appear.
        data: a data set spec of :func:`semtok.data.build.build_dataset` ("mnist5k" or a folder).
        out: the PNG to write (written atomically; parent folders made).
        split: "train" or "val".
        codes, patches: rows and columns per panel (>= 1).
        max_images: at most this many images encoded per tokenizer (>= 1).
        seed: seeds which occurrences of a code are shown.
        context: patch side in token cells (>= 1).
        batch_size, device: for encoding.
        title: a title over the whole figure.

    Returns:
        ``out``.
    """
    from semtok.hub.pretrained import resolve_model_dir

    if not tokenizers:
        raise SemtokError("codebook picture: tokenizers is empty; expected {name: tokenizer or run folder}")
    for option, value in (
        ("codes", codes),
        ("patches", patches),
        ("max_images", max_images),
        ("batch_size", batch_size),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise SemtokError(f"codebook picture: {option} must be an int >= 1, got {value!r}")
    panels = []
    for name, source in tokenizers.items():
        if isinstance(source, Tokenizer):
            tokenizer = source
        else:
            tokenizer = Tokenizer.from_pretrained(resolve_model_dir(source, "tokenizer"))
        ids, images = _encode_dataset(tokenizer, data, split, max_images, batch_size, device)
        panels.append(codebook_panel(name, ids, images, tokenizer.num_codes, codes, patches, context, seed))
    return save_figure(codebook_figure(panels, title), out)
