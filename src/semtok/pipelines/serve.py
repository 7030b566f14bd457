"""What the web page (:mod:`semtok.pipelines.serve_app`) shows, without the web framework: sample grids from a
proposal network, and an uploaded image's token map, reconstruction and the patches of its most used codes.

Every picture here is a ``uint8`` array ``[H, W, 3]`` (0..255), the form an image widget shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid

from semtok.data.folder import to_rgb
from semtok.data.transforms import ValTransform
from semtok.errors import SemtokError
from semtok.generators.sampler import Sampler
from semtok.generators.sampling import SamplingConfig
from semtok.tokenizers.base import Tokenizer
from semtok.visual.codebook_picture import code_patches

__all__ = [
    "GOLDEN",
    "ImageTokens",
    "check_choice",
    "class_choices",
    "code_colours",
    "generate_grid",
    "inspect_image",
    "to_picture",
    "token_map",
    "upscale",
]

GOLDEN = 0.618033988749895  # hue step between consecutive code ids: neighbouring ids get distant colours


def code_colours(ids: torch.Tensor | np.ndarray) -> np.ndarray:
    """A fixed colour per code id, the same in every image and session: ``ids`` (any shape, integer >= 0) ->
    ``uint8 [..., 3]``. Hue ``frac(id * golden ratio)``; saturation and value cycle over 3 and 2 levels so that
    codes with near hues still differ."""
    ids = np.asarray(ids, dtype=np.int64)
    if ids.size and ids.min() < 0:
        raise SemtokError(f"code ids: expected integers >= 0, got {int(ids.min())}")
    hue = np.mod(ids * GOLDEN, 1.0)
    saturation = np.array([0.85, 0.6, 0.4])[ids % 3]
    value = np.array([0.95, 0.7])[(ids // 3) % 2]
    sector = np.floor(hue * 6).astype(np.int64) % 6
    f = hue * 6 - np.floor(hue * 6)
    p, q, t = value * (1 - saturation), value * (1 - f * saturation), value * (1 - (1 - f) * saturation)
    table = np.stack(
        [
            np.stack([value, t, p], -1),
            np.stack([q, value, p], -1),
            np.stack([p, value, t], -1),
            np.stack([p, q, value], -1),
            np.stack([t, p, value], -1),
            np.stack([value, p, q], -1),
        ]
    )  # [6, ..., 3]
    rgb = np.take_along_axis(table, sector[None, ..., None].repeat(3, -1), 0)[0]
    return np.round(rgb * 255).astype(np.uint8)


def upscale(picture_HW3: np.ndarray, min_side: int = 256) -> np.ndarray:
    """``picture_HW3`` (uint8) enlarged by the smallest integer factor that makes its shorter side >= ``min_side``
    (nearest neighbour, so pixels and token cells stay sharp); unchanged when it is already that large."""
    factor = max(1, -(-min_side // max(1, min(picture_HW3.shape[:2]))))
    return picture_HW3.repeat(factor, 0).repeat(factor, 1) if factor > 1 else picture_HW3


def to_picture(
    images_B3HW: torch.Tensor, per_row: int = 8, min_side: int = 256, padding: int = 2
) -> np.ndarray:
    """Images in [-1, 1] ``[B, 3, H, W]`` -> one grid picture ``uint8 [H', W', 3]`` (``per_row`` across,
    ``padding`` px white gaps), upscaled by :func:`upscale`."""
    grid = make_grid((images_B3HW.float().clamp(-1, 1) + 1) / 2, nrow=per_row, padding=padding, pad_value=1.0)
    return upscale(grid.mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy(), min_side)


def token_map(ids_hw: torch.Tensor, image_size: int, min_side: int = 256) -> np.ndarray:
    """The token grid ``ids_hw`` (int64 ``[h, w]``) as a picture: each cell filled with its code's colour
    (:func:`code_colours`), cells as large as the pixels they cover in an ``image_size`` image, upscaled."""
    colours = code_colours(ids_hw.cpu().numpy())  # [h, w, 3]
    height, width = ids_hw.shape
    rows = np.arange(image_size) * height // image_size
    cols = np.arange(image_size) * width // image_size
    return upscale(colours[rows][:, cols], min_side)


def check_choice(sampler: Sampler, choice: str) -> int:
    """The class label of ``choice``: one of the page's class names (``sampler.class_names``, or ``"class N"``
    where the model records none)."""
    names = class_choices(sampler)
    if choice not in names:
        raise SemtokError(f"class {choice!r}: expected one of {', '.join(names)}")
    return names.index(choice)


def class_choices(sampler: Sampler) -> list[str]:
    """The names the class menu offers, in label order (an unconditional model: one entry)."""
    count = max(sampler.num_classes, 1)
    names = sampler.class_names
    if len(names) == count:
        return [str(name) for name in names]
    return [f"class {c}" for c in range(count)]


def generate_grid(
    sampler: Sampler,
    condition: str,
    n: int,
    seed: int,
    cfg_scale: float,
    temperature: float,
    steps: int = 12,
    per_row: int = 4,
) -> tuple[np.ndarray, dict[str, Any]]:
    """``n`` samples for one class name (a class model, see :func:`class_choices`) or one prompt (a text model;
    blank: unconditional) -> (grid picture ``uint8 [H, W, 3]``, the provenance a sample file would record).

    The other sampling settings are the defaults of :class:`SamplingConfig` (the paper's); ``steps`` applies to
    masked models. The same arguments give the same grid (seeded as ``semtok sample`` does)."""
    if not 1 <= n <= 64:
        raise SemtokError(f"number of samples {n}: expected 1..64")
    sampling = SamplingConfig(temperature=float(temperature), cfg_scale=float(cfg_scale), steps=int(steps))
    if sampler.is_text:
        images, _ = sampler.sample(sampling=sampling, seed=int(seed), prompts=[condition] * n)
        fields: dict[str, Any] = {"prompts": [condition]}
    else:
        label = check_choice(sampler, condition)
        images, _ = sampler.sample(torch.full((n,), label), sampling, seed=int(seed))
        fields = {"classes": [label]}
    provenance = sampler.provenance(sampling, int(seed), 64, **fields)
    return to_picture(images, per_row=min(per_row, n)), provenance


@dataclass
class ImageTokens:
    """An uploaded image through the tokenizer (from :func:`inspect_image`); pictures are ``uint8 [H, W, 3]``.

    - ``image``: the image as the tokenizer saw it (resized, centre-cropped), upscaled.
    - ``tokens``: its token map (a colour per code), ``reconstruction``: ``decode(encode(image))``, upscaled.
    - ``ids``: int64 ``[h, w]``; ``top_codes``: ``(code, count, patches picture)`` of its most used codes, most
      used first, each picture a grid of the cells (with context) whose token is that code, outlined in its colour.
    """

    image: np.ndarray
    tokens: np.ndarray
    reconstruction: np.ndarray
    ids: torch.Tensor
    top_codes: list[tuple[int, int, np.ndarray]]


def _outlined(patches: Any, colour: np.ndarray, min_side: int) -> np.ndarray:
    """Code patches (images in [-1, 1]) in a near-square grid (``ceil(sqrt(P))`` across, 4 px white gaps), each
    token cell's border drawn in ``colour``."""
    pixels = ((patches.pixels.float().clamp(-1, 1) + 1) / 2).mul(255).round().to(torch.uint8)
    pictures = []
    for patch, (top, left, bottom, right) in zip(pixels.permute(0, 2, 3, 1).numpy(), patches.boxes.tolist()):
        patch = upscale(patch.copy(), min_side)
        scale = patch.shape[0] // pixels.shape[2]
        top, left, bottom, right = top * scale, left * scale, bottom * scale - 1, right * scale - 1
        width = max(1, scale // 4)
        patch[top : top + width, left : right + 1] = colour
        patch[bottom - width + 1 : bottom + 1, left : right + 1] = colour
        patch[top : bottom + 1, left : left + width] = colour
        patch[top : bottom + 1, right - width + 1 : right + 1] = colour
        pictures.append(patch)
    across = math.ceil(math.sqrt(len(pictures)))
    side_h, side_w = pictures[0].shape[:2]
    rows = -(-len(pictures) // across)
    sheet = np.full((rows * (side_h + 4) - 4, across * (side_w + 4) - 4, 3), 255, np.uint8)
    for index, picture in enumerate(pictures):
        y, x = (index // across) * (side_h + 4), (index % across) * (side_w + 4)
        sheet[y : y + side_h, x : x + side_w] = picture
    return sheet


@torch.inference_mode()
def inspect_image(
    tokenizer: Tokenizer, image: Image.Image, top: int = 8, patches: int = 4, min_side: int = 256
) -> ImageTokens:
    """Encode one PIL image (any mode: :func:`semtok.data.folder.to_rgb`; resized and centre-cropped to the
    tokenizer's size as at evaluation) and decode it back; its ``top`` most used codes with up to ``patches``
    patches each (2 cells wide, :func:`semtok.visual.codebook_picture.code_patches`)."""
    if not isinstance(image, Image.Image):
        raise SemtokError(f"image: expected a PIL image, got {type(image).__name__}")
    size = tokenizer.config.image_size
    pixels = ValTransform(size)(to_rgb(image))[None]  # [1, 3, S, S] in [-1, 1]
    ids = tokenizer.encode(pixels)  # [1, h, w]
    recon = tokenizer.decode(ids).clamp(-1, 1)
    counts = torch.bincount(ids.flatten(), minlength=tokenizer.num_codes)
    order = torch.argsort(counts, descending=True, stable=True)[: min(top, int((counts > 0).sum()))]
    top_codes = []
    for code in order.tolist():
        cut = code_patches(ids, pixels, code, patches, context=2.0, seed=0)
        colour = code_colours(np.array(code))
        top_codes.append((code, int(counts[code]), _outlined(cut, colour, min_side // 2)))
    return ImageTokens(
        image=to_picture(pixels, 1, min_side, padding=0),
        tokens=token_map(ids[0], size, min_side),
        reconstruction=to_picture(recon, 1, min_side, padding=0),
        ids=ids[0],
        top_codes=top_codes,
    )
