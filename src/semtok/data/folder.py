"""Image folders as a data set, labelled (class subfolders) or not, in every format PIL reads.

Which files and labels: :mod:`semtok.data.folder_scan` (``scan_image_folder``, its layout rules and its header
check at construction). Unreadable files at load time: a file that still fails to decode (a truncated JPEG passes
the header check) is replaced by the next readable index (wrapping around), warned about by name, and appended to
``skipped_files``. Appends made inside DataLoader worker processes stay in those workers (their warnings still
print).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from semtok.data.folder_scan import FolderScan, scan_image_folder, warn_skipped
from semtok.data.items import checked_index
from semtok.data.transforms import ValTransform, apply_transform, transform_is_random
from semtok.errors import SemtokError

__all__ = ["ImageFolderDataset", "to_rgb"]

_WHITE = (255, 255, 255)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL image -> an 8-bit RGB PIL image.

    - 16-bit grayscale (``I;16*``) and 32-bit integer (``I``, as older Pillow opens 16-bit PNGs) are read as
      0..65535 and scaled to 0..255 by dividing by 257 (rounded; out-of-range ``I`` values clipped), not clipped
      at 255. Float (``F``) images are taken as 0..1 when their maximum is <= 1, else as 0..255.
    - Transparency (``RGBA``, ``LA``, ``PA``, premultiplied ``RGBa``/``La``, palette or grayscale/RGB images with a
      ``transparency`` key) is composited onto a white background, not dropped: pixels under alpha 0 often hold
      arbitrary colours, and white is what a viewer shows.
    - ``L``, ``1``, ``P``, ``CMYK``, ``YCbCr``, ``HSV``, ... go through PIL's ``convert("RGB")``; ``LAB`` through
      an ImageCms Lab -> sRGB transform.
    """
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image).astype(np.float64)
        values = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(values, mode="L").convert("RGB")
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if values.size and values.max() <= 1.0:
            values = values * 255.0
        values = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(values, mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        "transparency" in image.info and mode in ("P", "L", "RGB", "1")
    ):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "RGB":
        return image
    if mode == "LAB":
        from PIL import ImageCms

        transform = ImageCms.buildTransform(
            ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB"
        )
        return ImageCms.applyTransform(image, transform)
    return image.convert("RGB")


class ImageFolderDataset(Dataset):
    """Images from a folder as ``(image_3HW float32 in [-1, 1], label int (-1 when unlabeled))``.

    ``transform`` (default: ``ValTransform(image_size)``) gets the RGB PIL image; random transforms draw from
    ``item_generator(seed, epoch, index)`` (``set_epoch`` moves to another epoch's augmentation).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        image_size: int,
        transform: Callable | None = None,
        *,
        seed: int = 0,
        labelled: bool | None = None,
        class_names: Sequence[str] | None = None,
        check_headers: bool = True,
    ):
        scan = scan_image_folder(
            root, labelled=labelled, class_names=class_names, check_headers=check_headers
        )
        self._setup(scan, scan.samples, image_size, transform, seed, split=None)

    @classmethod
    def from_scan(
        cls,
        scan: FolderScan,
        image_size: int,
        transform: Callable | None = None,
        *,
        seed: int = 0,
        indices: Sequence[int] | None = None,
        split: str | None = None,
    ) -> ImageFolderDataset:
        """A data set over ``scan.samples`` (or the subset ``indices`` of them, e.g. from ``split_samples``)."""
        dataset = cls.__new__(cls)
        samples = scan.samples if indices is None else [scan.samples[i] for i in indices]
        dataset._setup(scan, samples, image_size, transform, seed, split)
        return dataset

    def _setup(
        self,
        scan: FolderScan,
        samples: list[tuple[str, int]],
        image_size: int,
        transform: Callable | None,
        seed: int,
        split: str | None,
    ) -> None:
        self.root = scan.root
        self.samples = list(samples)
        self.labelled = scan.labelled
        self.class_names = list(scan.class_names)
        self.num_classes = scan.num_classes
        self.skipped_files = list(scan.skipped_files)
        self.image_size = image_size
        self.transform = transform if transform is not None else ValTransform(image_size)
        self.seed = int(seed)
        self.epoch = 0
        self.split = split
        self._bad: set[int] = set()

    @property
    def is_random(self) -> bool:
        """Whether an item's image can differ between epochs (random augmentation)."""
        return transform_is_random(self.transform)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([label for _, label in self.samples], dtype=torch.int64)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.samples)

    def load_image(self, index: int) -> Image.Image:
        """The RGB PIL image of item ``index``, before the transform; raises whatever PIL raises on a bad file."""
        with Image.open(self.samples[index][0]) as image:
            image.load()
            return to_rgb(image)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        n = len(self.samples)
        index = checked_index(index, n)
        for step in range(n):
            j = (index + step) % n
            if j in self._bad:
                continue
            try:
                image = self.load_image(j)
            except Exception as error:  # a file that cannot be decoded is skipped, not fatal
                self._bad.add(j)
                path = self.samples[j][0]
                self.skipped_files.append(path)
                warn_skipped([(path, f"{type(error).__name__}: {error}")], "load")
                continue
            tensor = apply_transform(self.transform, image, self.seed, self.epoch, index)
            return tensor, self.samples[j][1]
        raise SemtokError(f"data folder {self.root}: none of its {n} image files could be decoded")

    def describe(self) -> str:
        split = f" [{self.split}]" if self.split else ""
        kind = f"{self.num_classes} classes" if self.labelled else "unlabeled"
        return (
            f"image folder {self.root}{split}: {len(self)} images, {kind}, {len(self.skipped_files)} skipped, "
            f"{self.image_size}x{self.image_size}; transform {self.transform!r}"
        )

    def __repr__(self) -> str:
        return f"ImageFolderDataset({self.describe()})"
