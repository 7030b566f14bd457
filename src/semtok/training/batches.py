"""The batch order every stage trains on: a permutation per (seed, epoch), sliced per process, resumable."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from tqdm.auto import tqdm

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
    Streaming data sets (``is_stream``: webdataset shards) go through :func:`stream_batches` instead.
    """
    if getattr(dataset, "is_stream", False):
        yield from stream_batches(dataset, batch_size, start_step, rank, world_size, num_workers)
        return
    steps_per_epoch = len(epoch_batches(len(dataset), batch_size, seed, 0, rank, world_size))
    if steps_per_epoch == 0:
        raise SemtokError(f"the data set has {len(dataset)} images, fewer than one batch of {batch_size}")
    epoch, skip = divmod(start_step, steps_per_epoch)
    # One DataLoader for the whole run (its workers start once, and prefetch across epoch boundaries): the batch
    # sampler hands out (epoch, index) pairs and the workers' copies of the data set move to that epoch's
    # augmentation. Its own generator: a DataLoader otherwise draws worker seeds from the global RNG, which would
    # shift the RNG stream of a resumed run (k-means, code restarts) against a straight one.
    loader = torch.utils.data.DataLoader(
        _Indexed(dataset),
        batch_sampler=_EpochBatches(dataset, batch_size, seed, epoch, skip, rank, world_size),
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch),
    )
    yield from loader


class _EpochBatches:
    """Endless batches of (epoch, index) pairs: ``epoch_batches`` of each epoch from ``(epoch, skip)`` on; calls
    the (main process's) data set's ``set_epoch`` as each epoch begins."""

    def __init__(
        self, dataset: Any, batch_size: int, seed: int, epoch: int, skip: int, rank: int, world_size: int
    ) -> None:
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.epoch, self.skip, self.rank, self.world_size = epoch, skip, rank, world_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, skip = self.epoch, self.skip
        while True:
            if hasattr(self.dataset, "set_epoch"):
                self.dataset.set_epoch(epoch)
            batches = epoch_batches(
                len(self.dataset), self.batch_size, self.seed, epoch, self.rank, self.world_size
            )
            for batch in batches[skip:]:
                yield [(epoch, index) for index in batch]
            epoch, skip = epoch + 1, 0


class _Indexed(torch.utils.data.Dataset):
    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int] | int) -> tuple[torch.Tensor, int, int]:
        epoch, index = key if isinstance(key, tuple) else (None, key)
        if (
            epoch is not None
            and hasattr(self.dataset, "set_epoch")
            and getattr(self.dataset, "epoch", None) != epoch
        ):
            self.dataset.set_epoch(epoch)  # a worker's copy follows the epoch of the batch it loads
        image, label = self.dataset[index]
        return image, label, index


def stream_batches(
    dataset: Any, batch_size: int, start_step: int, rank: int, world_size: int, num_workers: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Endless batches of ``batch_size // world_size`` items of a streaming data set (``ShardDataset``), from
    ``start_step`` on.

    A DataLoader with ``num_workers`` workers (W = max(1, num_workers) logical streams per process) hands out
    batch i from worker i % W; batch i is batch i // W of logical stream i % W (``dataset.train_items(rank,
    stream, skip)``: a pure function of (seed, rank, stream)). So a run resumed at step s with the same world size
    and worker count gets exactly the batches of a straight run: each worker starts on its logical stream at the
    right item, skipping whole shard draws by their counts without reading them.
    """
    per_process = batch_size // world_size
    if per_process < 1:
        raise SemtokError(f"batch size {batch_size}: fewer than one item for each of {world_size} processes")
    source = _StreamSlice(dataset, per_process, start_step, rank, max(1, num_workers))
    # Its own generator (the worker seeds; the stream draws from its own seeded generators): the global RNG that
    # k-means and code restarts use stays untouched, as in batch_stream.
    loader = torch.utils.data.DataLoader(
        source,
        batch_size=per_process,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(start_step * 1_000_003 + rank),
    )
    yield from loader


class _StreamSlice(torch.utils.data.IterableDataset):
    """Worker k of W streams logical stream (start_step + k) % W from its item ((start_step + k) // W) * batch."""

    def __init__(self, dataset: Any, batch: int, start_step: int, rank: int, streams: int) -> None:
        super().__init__()
        self.dataset, self.batch, self.start_step, self.rank, self.streams = (
            dataset,
            batch,
            start_step,
            rank,
            streams,
        )

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int, int]]:
        info = torch.utils.data.get_worker_info()
        position = self.start_step + (info.id if info is not None else 0)
        stream, batches_before = position % self.streams, position // self.streams
        return self.dataset.train_items(self.rank, stream, batches_before * self.batch)


@torch.no_grad()
def map_in_order(
    fn: Callable[[torch.Tensor], torch.Tensor],
    dataset: Any,
    batch_size: int,
    device: torch.device,
    show: bool,
    desc: str,
) -> torch.Tensor:
    """``fn`` over the images of every item of ``dataset`` in index order, ``batch_size`` at a time on
    ``device``, concatenated on the CPU (the stages' caches: teacher targets, a frozen tokenizer's ids)."""
    chunks = []
    for start in tqdm(range(0, len(dataset), batch_size), desc=desc, disable=not show, leave=False):
        images = torch.stack([dataset[i][0] for i in range(start, min(len(dataset), start + batch_size))])
        chunks.append(fn(images.to(device)).cpu())
    return torch.cat(chunks)
