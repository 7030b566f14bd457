"""The ``data`` config section of the image stages: which images, and how they are augmented for training."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from semtok.errors import SemtokError


@dataclass
class DataConfig:
    """Which images, and how they are augmented for training."""

    dataset: str = "mnist5k"  # "mnist5k" (embedded) or an image folder
    augment: str = "none"  # none | flip | crop_flip (RandomResizedCrop + horizontal flip) | crop (no flip)
    crop_scale: tuple[float, float] = (0.08, 1.0)
    # DataLoader workers that decode + augment: -1 = auto (0 for in-memory data such as mnist5k; for image
    # folders and shards min(8, usable cores - 1), at least 1); 0 = in the training process; N = N workers.
    num_workers: int = -1
    labels: str = (
        "auto"  # image folders: auto (class subfolders if any) | folders (required) | none (unlabelled)
    )

    def __post_init__(self) -> None:
        if (
            isinstance(self.num_workers, bool)
            or not isinstance(self.num_workers, int)
            or self.num_workers < -1
        ):
            raise SemtokError(
                f"config key 'data.num_workers': expected -1 (auto), 0 or a positive int, got {self.num_workers!r}"
            )
        if self.augment not in ("none", "flip", "crop_flip", "crop"):
            raise SemtokError(
                f"config key 'data.augment': expected none, flip, crop_flip or crop, got {self.augment!r}"
            )
        if self.labels not in ("auto", "folders", "none"):
            raise SemtokError(
                f"config key 'data.labels': expected auto, folders or none, got {self.labels!r}"
            )


def resolve_num_workers(num_workers: int, dataset: Any) -> int:
    """The DataLoader worker count for ``dataset``: ``num_workers`` itself when >= 0; for -1 (auto) 0 when the
    data set is in memory (it has ``images_uint8``: mnist5k and its captioned variant, where a worker only adds
    start-up time) and otherwise ``min(8, usable cores - 1)``, at least 1 (files to decode: image folders,
    shards)."""
    if num_workers >= 0:
        return int(num_workers)
    if hasattr(dataset, "images_uint8"):
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cores - 1))
