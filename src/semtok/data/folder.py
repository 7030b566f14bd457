"""Image folders, labelled (class subfolders) or not, in every format PIL reads.

Layout rules (``scan_image_folder``):
- *labelled*: the root has subfolders that contain images (at any depth). Each such subfolder is a class; class
  names are the sorted folder names, labels their index. Image files directly in the root are then ignored (with
  a warning), as are subfolders without images.
- *unlabeled*: otherwise. Every image under the root, at any depth, is an item with label -1.
- ``labelled=True/False`` forces either reading.
Files are found recursively (symlinks followed, loops cut, hidden files and folders skipped) and kept in sorted
order of their relative path, so the item order is the same on every machine. An image file is one whose
extension PIL registers for opening (``IMAGE_EXTENSIONS``, case-insensitive; video and stub-only formats left out).

Unreadable files -- the choice made here: verifying every file fully at construction (``Image.verify`` or a
decode) is too slow for a million files, so
1. at construction, every file's header is read (``Image.open`` parses the header only, in a few threads);
   a file that fails (not an image, garbage, unsupported) is left out, warned about by name and listed in
   ``skipped_files`` -- the count the trainer reports up front;
2. at load time, a file that still fails to decode (a truncated JPEG passes the header check) is replaced by the
   next readable index (wrapping around), warned about by name, and appended to ``skipped_files``. Appends made
   inside DataLoader worker processes stay in those workers (their warnings still print).
``check_headers=False`` skips step 1 (then every failure is found at load time).
"""

from __future__ import annotations

import hashlib
import operator
import os
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from semtok.data.transforms import ValTransform, apply_transform, transform_is_random
from semtok.errors import SemtokError

__all__ = [
    "IMAGE_EXTENSIONS",
    "FolderScan",
    "ImageFolderDataset",
    "SkippedFileWarning",
    "find_class_names",
    "list_image_files",
    "scan_image_folder",
    "split_samples",
    "to_rgb",
]


class SkippedFileWarning(UserWarning):
    """A file under a data folder that could not be read and was skipped."""


def _image_extensions() -> frozenset[str]:
    Image.init()
    # formats PIL can only identify (stubs) or that are videos: not images for a data set
    excluded = {"MPEG", "BUFR", "GRIB", "HDF5", "WMF"}
    openable = set(Image.OPEN) | {"MPO"}  # MPO (multi-picture JPEG) is opened by the JPEG plugin
    return frozenset(
        ext.lower()
        for ext, fmt in Image.registered_extensions().items()
        if fmt in openable and fmt not in excluded
    )


IMAGE_EXTENSIONS: frozenset[str] = _image_extensions()

_WHITE = (255, 255, 255)
_MAX_NAMED_WARNINGS = 20


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


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _has_image_extension(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _walk_images(directory: Path, stop_at_first: bool = False) -> list[str]:
    """Image files under ``directory`` (recursive, symlinks followed, loops cut, hidden entries skipped)."""
    found: list[str] = []
    visited: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:
            dirnames[:] = []
            continue
        visited.add(real)
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
        for name in sorted(filenames):
            if not _is_hidden(name) and _has_image_extension(name):
                found.append(os.path.join(dirpath, name))
                if stop_at_first:
                    return found
    return found


def list_image_files(directory: str | os.PathLike) -> list[str]:
    """All image files under ``directory``, recursively, sorted by their path relative to it."""
    directory = Path(directory)
    files = _walk_images(directory)
    return sorted(files, key=lambda p: Path(os.path.relpath(p, directory)).as_posix())


def _subfolders(root: Path) -> list[Path]:
    return sorted(
        (entry for entry in root.iterdir() if not _is_hidden(entry.name) and entry.is_dir()),
        key=lambda p: p.name,
    )


def find_class_names(root: str | os.PathLike) -> list[str]:
    """Sorted names of the subfolders of ``root`` that contain at least one image (cheap: stops at the first)."""
    return [sub.name for sub in _subfolders(Path(root)) if _walk_images(sub, stop_at_first=True)]


def _header_error(path: str) -> str | None:
    try:
        with Image.open(path) as image:
            image.size  # noqa: B018 - the header has been parsed by open
    except Exception as error:  # any failure means: not a readable image
        return f"{type(error).__name__}: {error}"
    return None


def _warn_skipped(problems: Sequence[tuple[str, str]], when: str) -> None:
    for path, reason in problems[:_MAX_NAMED_WARNINGS]:
        warnings.warn(f"skipped unreadable image {path} ({when}): {reason}", SkippedFileWarning, stacklevel=3)
    if len(problems) > _MAX_NAMED_WARNINGS:
        warnings.warn(
            f"skipped {len(problems) - _MAX_NAMED_WARNINGS} more unreadable images ({when}); "
            "see the data set's skipped_files",
            SkippedFileWarning,
            stacklevel=3,
        )


@dataclass
class FolderScan:
    """What ``scan_image_folder`` found: ``samples`` are (absolute path, label) in sorted order."""

    root: Path
    samples: list[tuple[str, int]]
    class_names: list[str]
    labelled: bool
    skipped_files: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.labelled else 0


def scan_image_folder(
    root: str | os.PathLike,
    labelled: bool | None = None,
    class_names: Sequence[str] | None = None,
    check_headers: bool = True,
    num_threads: int = 8,
) -> FolderScan:
    """Find the images under ``root`` and their labels (see the module docstring for the rules).

    ``class_names`` fixes the class list (for a val folder, pass the train folder's): every class folder found
    must be in it, and labels index into it. Raises ``SemtokError`` for a missing folder or one without images.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise SemtokError(f"data folder {root}: no such directory")
    if not root.is_dir():
        raise SemtokError(f"data folder {root}: not a directory")
    root = root.resolve()

    subfolders = _subfolders(root)
    class_files: dict[str, list[str]] = {}
    if labelled is None or labelled:
        for sub in subfolders:
            files = list_image_files(sub)
            if files:
                class_files[sub.name] = files
        if labelled is None:
            labelled = bool(class_files)
        elif not class_files:
            raise SemtokError(f"data folder {root}: labelled=True but no subfolder contains images")

    samples: list[tuple[str, int]] = []
    if labelled:
        if class_names is None:
            names = sorted(class_files)
        else:
            names = list(class_names)
            unknown = sorted(set(class_files) - set(names))
            if unknown:
                raise SemtokError(
                    f"data folder {root}: class folder(s) {', '.join(unknown)} not among the "
                    f"{len(names)} training classes"
                )
        index_of = {name: i for i, name in enumerate(names)}
        for name in sorted(class_files):
            samples.extend((path, index_of[name]) for path in class_files[name])
        top_level = [
            e.name
            for e in root.iterdir()
            if e.is_file() and not _is_hidden(e.name) and _has_image_extension(e.name)
        ]
        if top_level:
            warnings.warn(
                f"data folder {root}: ignored {len(top_level)} image file(s) at its top level "
                "(it has class subfolders; pass labelled=False to read every image unlabeled)",
                stacklevel=2,
            )
        empty = [sub.name for sub in subfolders if sub.name not in class_files]
        if empty:
            warnings.warn(
                f"data folder {root}: ignored subfolder(s) without images: {', '.join(empty[:10])}",
                stacklevel=2,
            )
    else:
        names = []
        samples = [(path, -1) for path in list_image_files(root)]

    if not samples:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS & {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif"}))
        raise SemtokError(
            f"data folder {root}: no image files found (looked for {extensions}, ... recursively)"
        )

    skipped: list[str] = []
    if check_headers:
        paths = [path for path, _ in samples]
        if len(paths) > 64 and num_threads > 1:
            with ThreadPoolExecutor(max_workers=num_threads) as pool:
                errors = list(pool.map(_header_error, paths, chunksize=64))
        else:
            errors = [_header_error(path) for path in paths]
        problems = [(path, error) for path, error in zip(paths, errors) if error is not None]
        if problems:
            _warn_skipped(problems, "header check")
            skipped = [path for path, _ in problems]
            samples = [sample for sample, error in zip(samples, errors) if error is None]
        if not samples:
            raise SemtokError(f"data folder {root}: none of its {len(paths)} image files could be read")
    return FolderScan(
        root=root, samples=samples, class_names=names, labelled=bool(labelled), skipped_files=skipped
    )


def _split_key(seed: int, root: Path, path: str) -> bytes:
    relative = Path(os.path.relpath(path, root)).as_posix()
    return hashlib.sha1(f"{seed}/{relative}".encode()).digest()


def split_samples(scan: FolderScan, val_fraction: float = 0.1, seed: int = 0) -> tuple[list[int], list[int]]:
    """A deterministic train/val split of ``scan.samples``: (train indices, val indices), each in sample order.

    Per class (all samples form one group when unlabeled), files are ranked by the SHA-1 of
    ``f"{seed}/{relative path}"`` and the first ``round(val_fraction * n)`` go to val, keeping at least one in
    train; if that gives no val file at all, one file of the largest group goes to val. The ranking depends only
    on each file's own path, so adding files moves few others between the splits. Needs at least 2 images.
    """
    if not 0.0 < val_fraction < 1.0:
        raise SemtokError(f"val_fraction: expected a number in (0, 1), got {val_fraction!r}")
    if len(scan.samples) < 2:
        raise SemtokError(f"data folder {scan.root}: needs at least 2 readable images for a train/val split")
    groups: dict[int, list[int]] = {}
    for i, (_, label) in enumerate(scan.samples):
        groups.setdefault(label, []).append(i)
    ranked = {
        label: sorted(members, key=lambda i: _split_key(seed, scan.root, scan.samples[i][0]))
        for label, members in groups.items()
    }
    counts = {
        label: min(len(m) - 1, int(np.floor(val_fraction * len(m) + 0.5))) for label, m in ranked.items()
    }
    if sum(counts.values()) == 0:
        largest = max(ranked, key=lambda label: (len(ranked[label]), -label))
        counts[largest] = 1
    val = sorted(i for label, members in ranked.items() for i in members[: counts[label]])
    val_set = set(val)
    train = [i for i in range(len(scan.samples)) if i not in val_set]
    return train, val


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
        index = operator.index(index)
        n = len(self.samples)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} images")
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
                _warn_skipped([(path, f"{type(error).__name__}: {error}")], "load")
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
