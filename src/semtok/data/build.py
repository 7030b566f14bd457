"""One factory for data sets and one for loaders whose order is a pure function of (seed, epoch).

Data set ``spec``: ``"mnist5k"`` (the embedded default) or a directory:
- with both ``train/`` and ``val/`` (or ``validation/``) subfolders: those are the splits; the val folder is read
  with the train folder's class list, so labels agree;
- otherwise: the whole folder is scanned and split deterministically, 10% val (``val_fraction``), at least one
  val image, stratified by class, ranked by a hash of each file's relative path and ``split_seed`` (see
  ``split_samples``). The split does not depend on the training ``seed``, so val stays the same across runs.
Augmentation (``augment``) applies to the train split only; val always gets the deterministic val transform.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sized
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from semtok.data.folder import ImageFolderDataset, find_class_names, scan_image_folder, split_samples
from semtok.data.mnist import MNIST5k
from semtok.data.transforms import build_transform, mix_seed
from semtok.errors import SemtokError

__all__ = ["EpochDataLoader", "EpochSampler", "build_dataset", "build_loader"]

_ORDER_TAG = 0x5E3707DE  # separates the loader's order stream from the per-item augmentation streams


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
) -> MNIST5k | ImageFolderDataset:
    """The ``split`` ("train" / "val") of data set ``spec`` with images ``[3, image_size, image_size]`` in [-1, 1].

    ``augment``: "none" | "crop_flip" (RandomResizedCrop(scale=crop_scale) + flip) | "flip" (train split only).
    ``seed`` seeds the per-item augmentation (with the epoch and index).
    """
    if split not in ("train", "val"):
        raise SemtokError(f"split: expected 'train' or 'val', got {split!r}")
    transform = build_transform(augment, image_size, crop_scale)  # validates augment / image_size / crop_scale
    if split == "val":
        transform = build_transform("none", image_size)

    if str(spec).lower() == "mnist5k":
        return MNIST5k(split, image_size, transform=transform if transform.is_random else None, seed=seed)

    root = Path(spec).expanduser()
    if not root.is_dir():
        raise SemtokError(f"dataset {str(spec)!r}: expected 'mnist5k' or an existing directory")
    train_dir = root / "train"
    val_dir = next((root / name for name in ("val", "validation") if (root / name).is_dir()), None)
    if train_dir.is_dir() and val_dir is not None:
        if split == "train":
            scan = scan_image_folder(train_dir, check_headers=check_headers)
        else:
            class_names = find_class_names(train_dir)
            scan = scan_image_folder(
                val_dir, labelled=bool(class_names), class_names=class_names or None, check_headers=check_headers
            )
        return ImageFolderDataset.from_scan(scan, image_size, transform, seed=seed, split=split)
    if train_dir.is_dir() or val_dir is not None:
        present = "train/" if train_dir.is_dir() else f"{val_dir.name}/"
        raise SemtokError(
            f"dataset {root}: has {present} but not both train/ and val/; add the other or rename it"
        )
    scan = scan_image_folder(root, check_headers=check_headers)
    train_indices, val_indices = split_samples(scan, val_fraction=val_fraction, seed=split_seed)
    indices = train_indices if split == "train" else val_indices
    return ImageFolderDataset.from_scan(
        scan, image_size, transform, seed=seed, indices=indices, split=f"{split}, {len(indices)} of {len(scan.samples)}"
    )


class EpochSampler(Sampler[int]):
    """Indices in an order fixed by (seed, epoch): a seeded permutation (``shuffle``) or 0..n-1.

    ``set_epoch(epoch, start)`` picks the epoch and skips its first ``start`` indices (for a resumed run:
    ``start = batches_done * batch_size`` yields exactly the remaining batches). ``set_epoch`` also calls the
    data set's ``set_epoch`` when it has one, so per-epoch augmentation follows the sampler -- including under
    Accelerate, whose ``DataLoaderShard.set_epoch`` calls the sampler's but not the data set's.
    """

    def __init__(self, dataset: Sized, shuffle: bool = True, seed: int = 0):
        self.dataset = dataset
        self.num_items = len(dataset)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        self.epoch = int(epoch)
        self.start = int(start)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)

    def order(self, epoch: int | None = None) -> torch.Tensor:
        """The full index order of ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else epoch
        if not self.shuffle:
            return torch.arange(self.num_items)
        generator = torch.Generator()
        generator.manual_seed(mix_seed(self.seed, epoch, _ORDER_TAG))
        return torch.randperm(self.num_items, generator=generator)

    def __iter__(self) -> Iterator[int]:
        return iter(self.order()[self.start :].tolist())

    def __len__(self) -> int:
        return max(0, self.num_items - self.start)


class EpochDataLoader(DataLoader):
    """A ``DataLoader`` over an ``EpochSampler``; ``set_epoch(epoch, skip_batches)`` picks epoch and resume point."""

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """Use ``epoch``'s order and augmentation; the next pass starts at batch ``skip_batches`` of that epoch."""
        self.sampler.set_epoch(epoch, start=int(skip_batches) * self.batch_size)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch


def build_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    pin_memory: bool = False,
) -> EpochDataLoader:
    """A loader whose batches are a pure function of (seed, epoch): call ``loader.set_epoch(epoch)`` per epoch.

    A resumed run calls ``loader.set_epoch(epoch, skip_batches=n)`` and sees exactly the batches n, n+1, ... of
    that epoch, with the same augmentation (the data set's per-item generator depends on (seed, epoch, index),
    not on the worker). Workers are not persistent, so each pass copies the data set with its current epoch. The
    loader gets its own ``torch.Generator`` and never draws from the global RNG.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise SemtokError(f"batch_size: expected a positive integer, got {batch_size!r}")
    if num_workers < 0:
        raise SemtokError(f"num_workers: expected an integer >= 0, got {num_workers!r}")
    sampler = EpochSampler(dataset, shuffle=shuffle, seed=seed)
    generator = torch.Generator()
    generator.manual_seed(mix_seed(seed, _ORDER_TAG))
    loader = EpochDataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        generator=generator,
        persistent_workers=False,
    )
    loader.set_epoch(0)
    return loader
