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
Splits: ``"train"``, ``"val"`` or ``"all"`` (every image of the data set: a flat folder unsplit; train/ then val/
read with the train class list; mnist5k, its captioned variant and COCO: train then val).
Labels (``labels``, the CLI's ``--labels``, the config's ``data.labels``): ``"auto"`` (the folder scan's rule, see
:mod:`semtok.data.folder_scan`: class subfolders make a folder labelled), ``"folders"`` (class subfolders required)
or ``"none"`` (every image under the root, at any depth, unlabelled). Captioned folders are always unlabelled, the
built-in data sets always labelled.
Augmentation (``augment``) applies to the train split and to ``"all"``; val always gets the deterministic val
transform.
"""

from __future__ import annotations

import os
from pathlib import Path

from semtok.data.captioned_folder import (
    CaptionedImageFolder,
    caption_layout,
    coco_scan,
    concat_captioned,
    jsonl_scan,
)
from semtok.data.captioned_mnist import CaptionedMNIST
from semtok.data.folder import ImageFolderDataset
from semtok.data.folder_scan import (
    FolderScan,
    concat_scans,
    find_class_names,
    scan_image_folder,
    split_samples,
)
from semtok.data.mnist import MNIST5k
from semtok.data.shard_files import is_shard_spec
from semtok.data.shards import ShardDataset, open_shards
from semtok.data.transforms import build_transform
from semtok.errors import SemtokError

__all__ = ["BUILTIN_DATASETS", "LABEL_MODES", "SPLITS", "build_dataset", "dataset_id"]

# Data set specs made by code (case-insensitive), not read from a directory.
BUILTIN_DATASETS = ("mnist5k", "mnist5k-captioned")
# The splits and the label readings every data set takes.
SPLITS = ("train", "val", "all")
LABEL_MODES = ("auto", "folders", "none")
_LABELLED = {"auto": None, "folders": True, "none": False}  # -> scan_image_folder(labelled=...)


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
    labels: str = "auto",
    val_fraction: float = 0.1,
    split_seed: int = 0,
    check_headers: bool = True,
) -> MNIST5k | CaptionedMNIST | ImageFolderDataset | CaptionedImageFolder | ShardDataset:
    """The ``split`` ("train" / "val" / "all") of data set ``spec`` with images ``[3, image_size, image_size]``
    float32 in [-1, 1] and int labels (-1 = unlabelled).

    ``augment``: "none" | "crop_flip" (RandomResizedCrop(scale=crop_scale) + flip) | "flip" | "crop" (the crop
    without the flip) (train and all only). ``labels``: "auto" | "folders" | "none" (see the module docstring).
    ``seed`` seeds the per-item augmentation (with the epoch and index).
    """
    if split not in SPLITS:
        raise SemtokError(f"split: expected 'train', 'val' or 'all', got {split!r}")
    if labels not in LABEL_MODES:
        raise SemtokError(f"labels: expected 'auto', 'folders' or 'none', got {labels!r}")
    transform = build_transform(
        augment, image_size, crop_scale
    )  # validates augment / image_size / crop_scale
    if split == "val":
        transform = build_transform("none", image_size)
    if is_shard_spec(spec):  # webdataset shards: a streaming (iterable) data set, see semtok.data.shards
        return open_shards(spec, split, image_size, transform, seed=seed)

    if str(spec).lower() in BUILTIN_DATASETS:
        if labels == "none":
            raise SemtokError(
                f"labels 'none' (--labels none): applies to image folders; {str(spec).lower()} is labelled "
                "(use auto)"
            )
        if str(spec).lower() == "mnist5k":
            return MNIST5k(split, image_size, transform=transform if transform.is_random else None, seed=seed)
        if augment != "none" and split != "val":
            raise SemtokError(
                "dataset mnist5k-captioned: augment must be 'none' (a flip breaks the digit, a crop its size)"
            )
        return CaptionedMNIST(split, image_size)

    root = Path(spec).expanduser()
    if not root.is_dir():
        raise SemtokError(f"dataset {str(spec)!r}: expected 'mnist5k' or an existing directory")
    layout = caption_layout(root)
    if layout is not None and labels == "folders":
        raise SemtokError(
            f"labels 'folders' (--labels folders): dataset {root} is a captioned folder ({layout}), read "
            "unlabelled (use auto or none)"
        )
    if layout == "coco":
        parts = ("train", "val") if split == "all" else (split,)
        captioned = concat_captioned(
            root, [coco_scan(root, part, check_headers=check_headers) for part in parts]
        )
        return CaptionedImageFolder(captioned, image_size, transform, seed=seed, split=f"{split}, COCO")
    if layout == "jsonl":
        captioned = jsonl_scan(root, check_headers=check_headers)
        indices, label = _flat_split(captioned.scan, split, val_fraction, split_seed)
        return CaptionedImageFolder(captioned, image_size, transform, seed=seed, indices=indices, split=label)
    train_dir = root / "train"
    val_dir = next((root / name for name in ("val", "validation") if (root / name).is_dir()), None)
    labelled = _LABELLED[labels]
    if train_dir.is_dir() and val_dir is not None:
        scan = _split_folders(root, train_dir, val_dir, split, labelled, check_headers)
        return ImageFolderDataset.from_scan(scan, image_size, transform, seed=seed, split=split)
    if train_dir.is_dir() or val_dir is not None:
        present = "train/" if train_dir.is_dir() else f"{val_dir.name}/"
        raise SemtokError(
            f"dataset {root}: has {present} but not both train/ and val/; add the other or rename it"
        )
    scan = scan_image_folder(root, labelled=labelled, check_headers=check_headers)
    indices, label = _flat_split(scan, split, val_fraction, split_seed)
    return ImageFolderDataset.from_scan(scan, image_size, transform, seed=seed, indices=indices, split=label)


def _split_folders(
    root: Path, train_dir: Path, val_dir: Path, split: str, labelled: bool | None, check_headers: bool
) -> FolderScan:
    """The scan of ``split`` of a folder with train/ and val/ subfolders; val (also in "all") is read with the train
    folder's class list, so labels agree."""
    train = None
    if split != "val":
        train = scan_image_folder(train_dir, labelled=labelled, check_headers=check_headers)
        if split == "train":
            return train
        class_names = train.class_names if train.labelled else []
    else:
        class_names = [] if labelled is False else find_class_names(train_dir)
        if labelled and not class_names:  # the train folder's own message
            scan_image_folder(train_dir, labelled=True, check_headers=False)
    val = scan_image_folder(
        val_dir, labelled=bool(class_names), class_names=class_names or None, check_headers=check_headers
    )
    return val if train is None else concat_scans(root, [train, val])


def _flat_split(
    scan: FolderScan, split: str, val_fraction: float, split_seed: int
) -> tuple[list[int] | None, str]:
    """The indices of ``split`` in the deterministic split of a flat folder's scan (None: every sample, for
    "all"), and its describe() label."""
    if split == "all":
        return None, f"all, {len(scan.samples)} images"
    train_indices, val_indices = split_samples(scan, val_fraction=val_fraction, seed=split_seed)
    indices = train_indices if split == "train" else val_indices
    return indices, f"{split}, {len(indices)} of {len(scan.samples)}"
