"""The ``data`` config section of the image stages: which images, and how they are augmented for training."""

from __future__ import annotations

from dataclasses import dataclass

from semtok.errors import SemtokError


@dataclass
class DataConfig:
    """Which images, and how they are augmented for training."""

    dataset: str = "mnist5k"  # "mnist5k" (embedded) or an image folder
    augment: str = "none"  # none | flip | crop_flip (RandomResizedCrop + horizontal flip) | crop (no flip)
    crop_scale: tuple[float, float] = (0.08, 1.0)
    num_workers: int = 0
    labels: str = (
        "auto"  # image folders: auto (class subfolders if any) | folders (required) | none (unlabelled)
    )

    def __post_init__(self) -> None:
        if self.augment not in ("none", "flip", "crop_flip", "crop"):
            raise SemtokError(
                f"config key 'data.augment': expected none, flip, crop_flip or crop, got {self.augment!r}"
            )
        if self.labels not in ("auto", "folders", "none"):
            raise SemtokError(
                f"config key 'data.labels': expected auto, folders or none, got {self.labels!r}"
            )
