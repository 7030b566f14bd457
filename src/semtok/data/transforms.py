"""Image transforms: the recipe's train augmentation and the deterministic val transform.

Every transform takes one image -- a PIL image (already RGB, see ``semtok.data.folder.to_rgb``) or a tensor
``[3, H, W]`` (uint8 in 0..255, or float in [-1, 1]) -- plus an optional ``torch.Generator``, and returns a
float32 tensor ``[3, image_size, image_size]`` in [-1, 1].

Reproducible augmentation: a random transform draws *all* its randomness from the generator it is given.
Datasets build that generator with ``item_generator(seed, epoch, index)``, so the crop and flip of an item depend
only on (seed, epoch, index) -- not on worker count, batch order or what ran before -- and a resumed run sees
exactly the same augmented images. ``is_random`` tells the trainer whether outputs can be cached (for example
teacher features): only when it is False.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from semtok.errors import SemtokError

__all__ = [
    "AUGMENTATIONS",
    "TrainTransform",
    "ValTransform",
    "apply_transform",
    "build_transform",
    "item_generator",
    "mix_seed",
    "to_tensor",
    "transform_is_random",
]

AUGMENTATIONS = ("none", "crop_flip", "flip", "crop")

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix_seed(*values: int) -> int:
    """A well-mixed non-negative 63-bit seed from a tuple of integers (stable across runs and platforms)."""
    h = 0x853C49E6748FEA9B
    for value in values:
        h = _splitmix64(h ^ (int(value) & _MASK64))
    return h & ((1 << 63) - 1)


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The CPU generator an item's random augmentation draws from: a pure function of (seed, epoch, index)."""
    generator = torch.Generator()
    generator.manual_seed(mix_seed(seed, epoch, index))
    return generator


def _check_size(image_size: int) -> int:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
        raise SemtokError(f"image_size: expected a positive integer, got {image_size!r}")
    return image_size


def _image_hw(image: Image.Image | torch.Tensor) -> tuple[int, int]:
    if isinstance(image, Image.Image):
        return image.height, image.width
    return int(image.shape[-2]), int(image.shape[-1])


def to_tensor(image: Image.Image | torch.Tensor) -> torch.Tensor:
    """PIL RGB image or ``[3, H, W]`` tensor (uint8 0..255 or float in [-1, 1]) -> float32 ``[3, H, W]`` in [-1, 1]."""
    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            raise ValueError(f"expected an RGB PIL image, got mode {image.mode!r} (use semtok.data.to_rgb)")
        array = np.asarray(image, dtype=np.uint8)
        image = torch.from_numpy(array.copy()).permute(2, 0, 1)
    if image.dtype == torch.uint8:
        return image.float().div_(127.5).sub_(1.0)
    return image.float().clamp(-1.0, 1.0)


def _resized_crop(image: Any, top: int, left: int, height: int, width: int, size: int) -> Any:
    return TF.resized_crop(
        image, top, left, height, width, [size, size], interpolation=InterpolationMode.BICUBIC, antialias=True
    )


def _resize_center_crop(image: Any, size: int) -> Any:
    height, width = _image_hw(image)
    if (height, width) != (size, size):
        image = TF.resize(image, size, interpolation=InterpolationMode.BICUBIC, antialias=True)
        image = TF.center_crop(image, [size, size])
    return image


class ValTransform:
    """Deterministic: resize the shorter side to ``image_size`` (bicubic, antialiased), then center-crop a square."""

    is_random = False

    def __init__(self, image_size: int):
        self.image_size = _check_size(image_size)

    def __call__(
        self, image: Image.Image | torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        return to_tensor(_resize_center_crop(image, self.image_size))

    def __repr__(self) -> str:
        return f"ValTransform(image_size={self.image_size}: resize shorter side + center crop)"


class TrainTransform:
    """The recipe's augmentation: ``RandomResizedCrop(image_size, scale, ratio)`` + ``RandomHorizontalFlip(0.5)``.

    ``crop=False`` replaces the random crop by the val transform's resize + center crop (augment ``"flip"``);
    ``hflip=False`` turns the flip off. The crop parameters follow torchvision's ``RandomResizedCrop.get_params``
    (10 tries, then a center crop clamped to ``ratio``) but draw from the given generator, never the global RNG.
    Without a generator, a fresh unseeded one is used (random, not reproducible).
    """

    def __init__(
        self,
        image_size: int,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
        hflip: bool = True,
        crop: bool = True,
    ):
        self.image_size = _check_size(image_size)
        lo, hi = (float(v) for v in scale)
        if not 0.0 < lo <= hi <= 1.0:
            raise SemtokError(f"crop_scale: expected 0 < min <= max <= 1, got {tuple(scale)!r}")
        rlo, rhi = (float(v) for v in ratio)
        if not 0.0 < rlo <= rhi:
            raise SemtokError(f"crop ratio: expected 0 < min <= max, got {tuple(ratio)!r}")
        self.scale = (lo, hi)
        self.ratio = (rlo, rhi)
        self.hflip = bool(hflip)
        self.crop = bool(crop)

    @property
    def is_random(self) -> bool:
        return self.crop or self.hflip

    def get_params(self, height: int, width: int, generator: torch.Generator) -> tuple[int, int, int, int]:
        """(top, left, crop_height, crop_width) of a random resized crop, drawn from ``generator``."""
        area = height * width
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            u_area, u_ratio = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
            target_area = area * (self.scale[0] + (self.scale[1] - self.scale[0]) * u_area)
            aspect = math.exp(log_lo + (log_hi - log_lo) * u_ratio)
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
                left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
                return top, left, h, w
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(
        self, image: Image.Image | torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if generator is None:
            generator = torch.Generator()
            generator.seed()
        if self.crop:
            height, width = _image_hw(image)
            top, left, h, w = self.get_params(height, width, generator)
            image = _resized_crop(image, top, left, h, w, self.image_size)
        else:
            image = _resize_center_crop(image, self.image_size)
        if self.hflip and bool(torch.rand(1, generator=generator) < 0.5):
            image = TF.horizontal_flip(image)
        return to_tensor(image)

    def __repr__(self) -> str:
        parts = [f"image_size={self.image_size}"]
        if self.crop:
            parts.append(
                f"random resized crop scale={self.scale} ratio=({self.ratio[0]:.3f}, {self.ratio[1]:.3f})"
            )
        else:
            parts.append("resize shorter side + center crop")
        if self.hflip:
            parts.append("horizontal flip p=0.5")
        return f"TrainTransform({', '.join(parts)})"


def build_transform(
    augment: str, image_size: int, crop_scale: tuple[float, float] = (0.08, 1.0)
) -> ValTransform | TrainTransform:
    """``"none"`` -> ``ValTransform``; ``"crop_flip"`` -> random resized crop + flip; ``"flip"`` -> center crop + flip;
    ``"crop"`` -> random resized crop, no flip (for images that flipping changes the meaning of, e.g. digits)."""
    if augment == "none":
        return ValTransform(image_size)
    if augment == "crop_flip":
        return TrainTransform(image_size, scale=crop_scale, hflip=True, crop=True)
    if augment == "flip":
        return TrainTransform(image_size, scale=crop_scale, hflip=True, crop=False)
    if augment == "crop":
        return TrainTransform(image_size, scale=crop_scale, hflip=False, crop=True)
    raise SemtokError(f"augment: expected one of {', '.join(AUGMENTATIONS)}, got {augment!r}")


def transform_is_random(transform: Callable | None) -> bool:
    """Whether a transform's output can change between calls: ours say so; foreign callables count as random."""
    if transform is None:
        return False
    return bool(getattr(transform, "is_random", True))


def apply_transform(
    transform: Callable, image: Image.Image | torch.Tensor, seed: int, epoch: int, index: int
) -> torch.Tensor:
    """Apply ``transform`` to one item reproducibly for (seed, epoch, index).

    semtok transforms (those with an ``is_random`` attribute) get a generator from ``item_generator``; any other
    callable (say, a torchvision ``Compose``) is called as ``transform(image)`` inside ``torch.random.fork_rng``
    with the global RNG seeded from (seed, epoch, index), so it is reproducible too and leaves the caller's RNG
    untouched. Foreign transforms must themselves return a float tensor ``[3, H, W]`` in [-1, 1].
    """
    if hasattr(transform, "is_random"):
        generator = item_generator(seed, epoch, index) if transform.is_random else None
        return transform(image, generator)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(mix_seed(seed, epoch, index))
        return transform(image)
