"""One factory for data sets (the batch order lives in ``semtok.training.batches``).

Data set ``spec``: ``"mnist5k"`` (the embedded default), ``"mnist5k-captioned"`` (its coloured, sized and captioned
variant for text-to-image, :mod:`semtok.data.captioned_mnist`) or a directory:
- with both ``train/`` and ``val/`` (or ``validation/``) subfolders: those are the splits; the val folder is read
  with the train folder's class list, so labels agree;
- otherwise: the whole folder is scanned and split deterministically, 10% val (``val_fraction``), at least one
  val image, stratified by class, ranked by a hash of each file's relative path and ``split_seed`` (see
  ``split_samples``). The split does not depend on the training ``seed``, so val stays the same across runs.
Captioned folders (:mod:`semtok.data.captioned_folder`, checked first): an MS-COCO root (holding
``annotations/captions_train2017.json``: train2017/ with all captions, val2017/ with the lowest-id caption) and a
folder with ``captions.jsonl`` at its top level (unlabelled, split as a flat folder). Every captioned data set has
``captions_of(index) -> list[str]``.
Webdataset shards (:mod:`semtok.data.shards`, checked first): a shard folder (holding ``shards.json``) or a
``.tar`` brace pattern such as ``'DIR/{000000..000127}.tar'``; a streaming ``ShardDataset`` whatever the split.
Augmentation (``augment``) applies to the train split only; val always gets the deterministic val transform.
"""

from __future__ import annotations

import os
from pathlib import Path

from semtok.data.captioned_folder import CaptionedImageFolder, caption_layout, coco_scan, jsonl_scan
from semtok.data.captioned_mnist import CaptionedMNIST
from semtok.data.folder import ImageFolderDataset
from semtok.data.folder_scan import FolderScan, find_class_names, scan_image_folder, split_samples
from semtok.data.mnist import MNIST5k
from semtok.data.shard_files import is_shard_spec
from semtok.data.shards import ShardDataset, open_shards
from semtok.data.transforms import build_transform
from semtok.errors import SemtokError

__all__ = ["BUILTIN_DATASETS", "build_dataset", "dataset_id"]

# Data set specs made by code (case-insensitive), not read from a directory.
BUILTIN_DATASETS = ("mnist5k", "mnist5k-captioned")


def dataset_id(spec: str | os.PathLike) -> str:
    """What names a data set's content (for caches such as the FID reference statistics): a built-in spec's
    lower-case name, else the directory's resolved path (the same from any working directory)."""
    if str(spec).lower() in BUILTIN_DATASETS:
        return str(spec).lower()
    return str(Path(spec).expanduser().resolve())


def build_dataset(
    spec: str | os.PathLike,
    split: str,
    image_size: int,
    augment: str = "none",
    crop_scale: tuple[float, float] = (0.08, 1.0),
    seed: int = 0,
    *,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    check_headers: bool = True,
) -> MNIST5k | CaptionedMNIST | ImageFolderDataset | CaptionedImageFolder | ShardDataset:
    """The ``split`` ("train" / "val") of data set ``spec`` with images ``[3, image_size, image_size]`` in [-1, 1].

    ``augment``: "none" | "crop_flip" (RandomResizedCrop(scale=crop_scale) + flip) | "flip" | "crop" (the crop
    without the flip) (train split only).
    ``seed`` seeds the per-item augmentation (with the epoch and index).
    """
    if split not in ("train", "val"):
        raise SemtokError(f"split: expected 'train' or 'val', got {split!r}")
    transform = build_transform(
        augment, image_size, crop_scale
    )  # validates augment / image_size / crop_scale
    if split == "val":
        transform = build_transform("none", image_size)
    if is_shard_spec(spec):  # webdataset shards: a streaming (iterable) data set, see semtok.data.shards
        return open_shards(spec, split, image_size, transform, seed=seed)

    if str(spec).lower() == "mnist5k-captioned":
        if augment != "none" and split == "train":
            raise SemtokError(
                "dataset mnist5k-captioned: augment must be 'none' (a flip breaks the digit, a crop its size)"
            )
        return CaptionedMNIST(split, image_size)
    if str(spec).lower() == "mnist5k":
        return MNIST5k(split, image_size, transform=transform if transform.is_random else None, seed=seed)

    root = Path(spec).expanduser()
    if not root.is_dir():
        raise SemtokError(f"dataset {str(spec)!r}: expected 'mnist5k' or an existing directory")
    layout = caption_layout(root)
    if layout == "coco":
        captioned = coco_scan(root, split, check_headers=check_headers)
        return CaptionedImageFolder(captioned, image_size, transform, seed=seed, split=f"{split}, COCO")
    if layout == "jsonl":
        captioned = jsonl_scan(root, check_headers=check_headers)
        indices, label = _flat_split(captioned.scan, split, val_fraction, split_seed)
        return CaptionedImageFolder(captioned, image_size, transform, seed=seed, indices=indices, split=label)
    train_dir = root / "train"
    val_dir = next((root / name for name in ("val", "validation") if (root / name).is_dir()), None)
    if train_dir.is_dir() and val_dir is not None:
        if split == "train":
            scan = scan_image_folder(train_dir, check_headers=check_headers)
        else:
            class_names = find_class_names(train_dir)
            scan = scan_image_folder(
                val_dir,
                labelled=bool(class_names),
                class_names=class_names or None,
                check_headers=check_headers,
            )
        return ImageFolderDataset.from_scan(scan, image_size, transform, seed=seed, split=split)
    if train_dir.is_dir() or val_dir is not None:
        present = "train/" if train_dir.is_dir() else f"{val_dir.name}/"
        raise SemtokError(
            f"dataset {root}: has {present} but not both train/ and val/; add the other or rename it"
        )
    scan = scan_image_folder(root, check_headers=check_headers)
    indices, label = _flat_split(scan, split, val_fraction, split_seed)
    return ImageFolderDataset.from_scan(scan, image_size, transform, seed=seed, indices=indices, split=label)


def _flat_split(scan: FolderScan, split: str, val_fraction: float, split_seed: int) -> tuple[list[int], str]:
    """The indices of ``split`` in the deterministic split of a flat folder's scan, and its describe() label."""
    train_indices, val_indices = split_samples(scan, val_fraction=val_fraction, seed=split_seed)
    indices = train_indices if split == "train" else val_indices
    return indices, f"{split}, {len(indices)} of {len(scan.samples)}"
