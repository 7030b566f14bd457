"""The batch order every stage trains on: a permutation per (seed, epoch), sliced per process, resumable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from semtok.errors import SemtokError


def epoch_batches(
    num_items: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1
) -> list[list[int]]:
    """This process's batches of dataset indices for one epoch: a permutation seeded by (seed, epoch).

    ``batch_size`` is the global batch; each process takes its own ``batch_size // world_size`` slice of every
    global batch. The last incomplete global batch is dropped, so every step sees a full batch.
    The order depends only on (seed, epoch), never on RNG state, so a resumed run replays it exactly.
    """
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(num_items, generator=generator).tolist()
    per_process = batch_size // world_size
    batches = []
    for start in range(0, num_items - batch_size + 1, batch_size):
        global_batch = order[start : start + batch_size]
        batches.append(global_batch[rank * per_process : (rank + 1) * per_process])
    return batches


def batch_stream(
    dataset: Any,
    batch_size: int,
    seed: int,
    start_step: int,
    rank: int,
    world_size: int,
    num_workers: int = 0,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless (images, labels, indices) batches from ``start_step`` on, epoch after epoch.

    Datasets with ``set_epoch`` get it called, so random augmentation is a function of (seed, epoch, index).
    """
    steps_per_epoch = len(epoch_batches(len(dataset), batch_size, seed, 0, rank, world_size))
    if steps_per_epoch == 0:
        raise SemtokError(f"the data set has {len(dataset)} images, fewer than one batch of {batch_size}")
    epoch, skip = divmod(start_step, steps_per_epoch)
    while True:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        batches = epoch_batches(len(dataset), batch_size, seed, epoch, rank, world_size)[skip:]
        # Its own generator: a DataLoader otherwise draws worker seeds from the global RNG, which would shift the
        # RNG stream of a resumed run (k-means, code restarts) against a straight one.
        loader = torch.utils.data.DataLoader(
            _Indexed(dataset),
            batch_sampler=batches,
            num_workers=num_workers,
            persistent_workers=False,
            generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch),
        )
        yield from loader
        epoch, skip = epoch + 1, 0


class _Indexed(torch.utils.data.Dataset):
    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        image, label = self.dataset[index]
        return image, label, index
