"""Captioned MNIST-5k: the embedded text-to-image default, made by code from MNIST-5k (no download).

Every image is one MNIST-5k digit (the same 4500 / 500 split), drawn in one of :data:`COLOURS` at one of
:data:`SIZES` on a black ``image_size`` canvas, centred; its caption names all three attributes from one of
:data:`TEMPLATES` ("a small red 7", "the digit seven in green, large"). Every attribute can be checked on a generated
image: the digit by a judge trained on this data, the colour from the pixels and the size from the bounding box
(:mod:`semtok.metrics.attributes`).

Compositional generalisation: the (digit, colour) pairs of :data:`HELD_OUT` (one colour per digit) never occur in the
train split; the val split uses every pair, so generation can be scored separately on seen and held-out pairs. The
attributes of item ``i`` come from ``numpy.random.default_rng([seed, i, split])``: the same on every machine.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from semtok.data.items import checked_index
from semtok.data.mnist import _raw_mnist, mnist5k_split_indices
from semtok.data.transforms import to_tensor
from semtok.errors import SemtokError

__all__ = ["COLOURS", "HELD_OUT", "SIZES", "TEMPLATES", "CaptionedMNIST", "Attributes", "caption_for"]

# name -> RGB in [0, 255]: saturated, far apart in hue, so the colour can be read back from the pixels.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 40, 40),
    "green": (40, 220, 40),
    "blue": (50, 90, 255),
    "yellow": (250, 230, 30),
    "magenta": (240, 40, 240),
    "cyan": (30, 230, 240),
}
# name -> the digit's longer ink side as a share of the canvas side.
SIZES: dict[str, float] = {"small": 0.5, "large": 0.95}
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEMPLATES = (
    "a {size} {colour} {digit}",
    "the digit {word} in {colour}, {size}",
    "a {colour} number {digit}, {size}",
    "{size} {colour} {word}",
)
COLOUR_NAMES = list(COLOURS)
# One (digit, colour) pair per digit never seen in training: digit d with colour (d + 3) mod 6 ... spread over colours.
HELD_OUT: frozenset[tuple[int, str]] = frozenset((d, COLOUR_NAMES[(d + 3) % len(COLOURS)]) for d in range(10))


class Attributes(NamedTuple):
    digit: int
    colour: str
    size: str


def caption_for(attributes: Attributes, template: int = 0) -> str:
    """The caption of ``attributes`` with template ``template`` (an index into :data:`TEMPLATES`)."""
    return TEMPLATES[template].format(
        size=attributes.size,
        colour=attributes.colour,
        digit=attributes.digit,
        word=DIGIT_WORDS[attributes.digit],
    )


def render(gray_HW: torch.Tensor, colour: str, size: str, image_size: int) -> torch.Tensor:
    """uint8 ``[3, image_size, image_size]``: a uint8 digit cropped to its ink box, scaled so that its longer side is
    ``SIZES[size]`` of the canvas side (aspect kept), tinted ``COLOURS[colour]``, centred on black."""
    ink = gray_HW > 0
    rows, cols = ink.any(dim=1).nonzero().flatten(), ink.any(dim=0).nonzero().flatten()
    if rows.numel():
        gray_HW = gray_HW[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    height, width = gray_HW.shape
    side = SIZES[size] * image_size
    new_h = max(2, round(side * height / max(height, width)))
    new_w = max(2, round(side * width / max(height, width)))
    digit = F.interpolate(gray_HW[None, None].float(), size=(new_h, new_w), mode="bilinear", antialias=True)[
        0, 0
    ]
    canvas = torch.zeros(image_size, image_size)
    top, left = (image_size - new_h) // 2, (image_size - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = digit.clamp(0, 255) * (
        255.0 / max(float(digit.max()), 1.0)
    )
    rgb = torch.tensor(COLOURS[colour], dtype=torch.float32)[:, None, None] / 255.0
    return (canvas[None] * rgb).round().clamp(0, 255).to(torch.uint8)


class CaptionedMNIST(Dataset):
    """``(image_3HW float32 in [-1, 1], digit label int)`` with ``captions[i]`` and ``attributes[i]``; 4500 / 500.

    ``seed`` chooses the colours, sizes and templates (default 0: the embedded default).
    """

    num_classes = 10

    def __init__(self, split: str = "train", image_size: int = 32, seed: int = 0) -> None:
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
            raise SemtokError(f"image_size: expected an integer >= 8, got {image_size!r}")
        self.split, self.image_size, self.seed = split, image_size, int(seed)
        self.class_names = [str(digit) for digit in range(10)]
        self.indices = mnist5k_split_indices(split)
        raw_images, raw_labels = _raw_mnist()
        labels = raw_labels[self.indices]
        self.attributes: list[Attributes] = []
        self.captions: list[str] = []
        images = []
        # "all" is train then val, each item drawn as in its own split (its index there, its split's colours)
        parts = [(part, len(mnist5k_split_indices(part))) for part in ("train", "val")]
        parts = parts if split == "all" else [(split, len(self.indices))]
        origins = [(part, index) for part, count in parts for index in range(count)]
        for (part, index), position, digit in zip(origins, self.indices, labels, strict=True):
            rng = np.random.default_rng([self.seed, index, 0 if part == "train" else 1])
            colours = [c for c in COLOUR_NAMES if part != "train" or (int(digit), c) not in HELD_OUT]
            attributes = Attributes(int(digit), str(rng.choice(colours)), str(rng.choice(list(SIZES))))
            self.attributes.append(attributes)
            self.captions.append(caption_for(attributes, int(rng.integers(len(TEMPLATES)))))
            images.append(
                render(
                    torch.from_numpy(raw_images[position].copy()),
                    attributes.colour,
                    attributes.size,
                    image_size,
                )
            )
        self._images = torch.stack(images)
        self._labels = torch.from_numpy(labels.copy())

    @property
    def images_uint8(self) -> torch.Tensor:
        return self._images

    @property
    def labels(self) -> torch.Tensor:
        return self._labels

    def captions_of(self, index: int) -> list[str]:
        """The captions of item ``index``: ``[self.captions[index]]`` (every captioned data set has this method)."""
        return [self.captions[checked_index(index, len(self.indices))]]

    def held_out(self, index: int) -> bool:
        """Whether item ``index`` shows a (digit, colour) pair that the train split never shows."""
        attributes = self.attributes[index]
        return (attributes.digit, attributes.colour) in HELD_OUT

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return to_tensor(self._images), self._labels.clone()

    def set_epoch(self, epoch: int) -> None:
        """(No random transform: the images are fixed.)"""

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = checked_index(index, len(self.indices))
        return to_tensor(self._images[index]), int(self._labels[index])
