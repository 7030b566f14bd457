"""webdataset tar shards as a streaming data set (format: :mod:`semtok.data.shard_files`; writer:
:mod:`semtok.data.shard_writer`).

:class:`ShardDataset` is a ``torch.utils.data.IterableDataset``. Decoding and the transform run where it is
iterated -- in the DataLoader workers. Shards are split by process (node rank) and by DataLoader worker at the
shard level. Two modes:

- **epoch mode** (``iter(dataset)``, what tokenize / evaluate use): each epoch yields every readable sample exactly
  once across all ranks x workers; the shard order is a permutation seeded by (seed, epoch), rank ``r`` of ``w``
  takes every ``w``-th shard of it and worker ``k`` of ``n`` every ``n``-th of those. Items are
  ``(image_3HW float32 in [-1, 1], label int (-1 unlabelled), global index int)``.
- **training mode** (:meth:`ShardDataset.train_items`, used by ``semtok.training.batches.batch_stream``): endless.
  Each (rank, stream) draws shards with replacement from a generator seeded by (seed, rank, stream, draw number)
  and shuffles each drawn shard's samples with the same generator (a within-shard shuffle buffer as large as the
  shard), so every rank always has batches (no DDP hang on unequal counts). Every draw yields exactly the shard's
  ``shards.json`` count (a sample that fails to decode is replaced by the next good one of the same draw), so the
  stream can skip whole draws by count: resuming at step s is exact (see ``batch_stream``).

Augmentation is ``apply_transform(transform, image, seed, epoch, index)`` as in the folder data sets (in training
mode ``epoch`` is a hash of (rank, stream, draw), so a sample drawn twice gets two augmentations).
Captions: captioned shards carry them in each sample's ``json``; ``captions_of(index)`` reads the folder's
``captions.jsonl`` side file (or, for a bare pattern, the tars' json members) once, lazily.
A truncated / corrupt shard or sample is skipped with a ``ShardSkippedWarning`` naming the shard.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from semtok.data.shard_files import (
    CAPTIONS_JSONL,
    ShardSkippedWarning,
    decode_record,
    read_records,
    resolve_shards,
)
from semtok.data.transforms import ValTransform, apply_transform, mix_seed, transform_is_random
from semtok.errors import SemtokError

__all__ = ["ShardDataset", "open_shards", "process_rank"]


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process: torch.distributed when initialised, else Accelerate's state, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    try:
        from accelerate.state import PartialState

        if PartialState._shared_state:
            state = PartialState()
            return state.process_index, state.num_processes
    except ImportError:  # pragma: no cover - accelerate is a dependency
        pass
    return 0, 1


def _worker() -> tuple[int, int]:
    info = get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


class ShardDataset(IterableDataset):
    """Streaming samples of webdataset shards; see the module docstring for the two modes.

    ``rank`` / ``world_size``: the process slice in epoch mode (default: :func:`process_rank` at iteration).
    ``transform`` (default ``ValTransform(image_size)``) gets the RGB PIL image and returns ``[3, S, S]`` float32
    in [-1, 1]. ``len()`` is the total sample count (``shards.json`` or the tars' member names).
    """

    is_stream = True

    def __init__(
        self,
        spec: str | os.PathLike,
        image_size: int,
        transform: Callable | None = None,
        *,
        seed: int = 0,
        split: str | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        self.spec = str(spec)
        self.urls, self.counts, info = resolve_shards(spec)
        self.class_names = [str(name) for name in info.get("class_names", [])]
        self.num_classes = int(info.get("num_classes", len(self.class_names)))
        self.labelled = self.num_classes > 0
        self.captioned = bool(info.get("captioned", False))
        self.source = info.get("source")
        self.image_size = image_size
        self.transform = transform if transform is not None else ValTransform(image_size)
        self.seed, self.epoch, self.split = int(seed), 0, split
        self.rank, self.world_size = rank, world_size
        self.skipped_files: list[str] = []  # shards / samples skipped in this process
        self._warned: set[str] = set()
        self._captions: dict[int, list[str]] | None = None

    @property
    def is_random(self) -> bool:
        return transform_is_random(self.transform)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return int(sum(self.counts))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """Streams have no random access: a clear error for the code paths that index a data set."""
        raise SemtokError(
            f"shards {self.spec!r}: a stream has no random access by index (this command needs an image folder or "
            "mnist5k; iterate the shards instead)"
        )

    # -- decoding -----------------------------------------------------------------------------------------
    def _decode(self, record: dict[str, Any], url: str, epoch: int) -> tuple[torch.Tensor, int, int] | None:
        """(image, label, index) of a raw record, or None (warned, naming the shard) when it cannot be decoded."""
        try:
            image, label, index, _ = decode_record(record)
        except Exception as error:  # a corrupt sample is skipped, not fatal
            name = f"{url}:{record.get('__key__')}"
            self.skipped_files.append(name)
            warnings.warn(
                f"shard '{url}': skipped sample {record.get('__key__')!r} ({type(error).__name__}: {error})",
                ShardSkippedWarning,
                stacklevel=2,
            )
            return None
        return apply_transform(self.transform, image, self.seed, epoch, index), label, index

    def _records(self, url: str) -> Iterator[dict[str, Any]]:
        before = len(self._warned)
        yield from read_records(url, self._warned)
        if len(self._warned) > before:
            self.skipped_files.append(url)

    # -- epoch mode ---------------------------------------------------------------------------------------
    def epoch_shards(
        self, epoch: int, rank: int, world_size: int, worker: int = 0, workers: int = 1
    ) -> list[int]:
        """The shard numbers (into ``self.urls``) that (rank, worker) reads in ``epoch``, in reading order."""
        generator = torch.Generator().manual_seed(mix_seed(self.seed, epoch, 0x5A4D))
        order = torch.randperm(len(self.urls), generator=generator).tolist()
        return order[rank::world_size][worker::workers]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int, int]]:
        detected = process_rank()
        rank = self.rank if self.rank is not None else detected[0]
        world = self.world_size if self.world_size is not None else detected[1]
        worker, workers = _worker()
        for shard in self.epoch_shards(self.epoch, rank, world, worker, workers):
            url = self.urls[shard]
            for record in self._records(url):
                item = self._decode(record, url, self.epoch)
                if item is not None:
                    yield item

    # -- training mode ------------------------------------------------------------------------------------
    def _draw(self, rank: int, stream: int, draw: int) -> tuple[np.random.Generator, int]:
        rng = np.random.default_rng(mix_seed(self.seed, rank, stream, draw, 0x7EA1))
        return rng, int(rng.integers(len(self.urls)))

    def train_items(self, rank: int, stream: int, skip: int = 0) -> Iterator[tuple[torch.Tensor, int, int]]:
        """Endless (image, label, index) items of logical stream ``stream`` of process ``rank``, after skipping its
        first ``skip`` items (whole draws are skipped by their counts without reading them)."""
        if not any(self.counts):
            raise SemtokError(f"shards {self.spec!r}: hold no samples")
        draw = 0
        while True:
            rng, shard = self._draw(rank, stream, draw)
            count = self.counts[shard]
            if skip >= count:
                skip -= count
                draw += 1
                continue
            url = self.urls[shard]
            records = list(self._records(url))
            epoch = mix_seed(rank, stream, draw)
            if records:
                order = rng.permutation(len(records)).tolist()
                order = (order * (count // len(order) + 1))[
                    :count
                ]  # a shorter (damaged) shard keeps its count
                for position in range(skip, count):
                    item = None
                    for attempt in range(len(records)):
                        j = order[(position + attempt) % count]
                        item = self._decode(records[j], url, epoch)
                        if item is not None:
                            break
                    if item is None:
                        break  # nothing of this shard decodes
                    yield item
            skip = 0
            draw += 1

    # -- the rest of the data set interface --------------------------------------------------------------
    def captions_of(self, index: int) -> list[str]:
        """The captions of the sample with global ``index`` (captioned shards only)."""
        if not self.captioned:
            raise SemtokError(f"shards {self.spec!r}: not captioned")
        if self._captions is None:
            self._captions = self._load_captions()
        if int(index) not in self._captions:
            raise SemtokError(f"shards {self.spec!r}: no sample with index {int(index)}")
        return list(self._captions[int(index)])

    def _load_captions(self) -> dict[int, list[str]]:
        side = Path(self.urls[0]).parent / CAPTIONS_JSONL
        if side.is_file():
            rows = (json.loads(line) for line in side.read_text().splitlines() if line.strip())
            return {int(row["index"]): list(row["captions"]) for row in rows}
        captions: dict[int, list[str]] = {}
        for url in self.urls:
            for record in read_records(url, self._warned):
                meta = json.loads(record.get("json", b"{}"))
                if "captions" in meta:
                    captions[int(meta["index"])] = list(meta["captions"])
        return captions

    def describe(self) -> str:
        split = f" [{self.split}]" if self.split else ""
        kind = f"{self.num_classes} classes" if self.labelled else "unlabeled"
        captioned = ", captioned" if self.captioned else ""
        return (
            f"webdataset shards {self.spec}{split}: {len(self.urls)} shards, {len(self)} samples, {kind}"
            f"{captioned}, {self.image_size}x{self.image_size}; transform {self.transform!r}"
        )

    def __repr__(self) -> str:
        return f"ShardDataset({self.describe()})"


def open_shards(
    spec: str | os.PathLike, split: str, image_size: int, transform: Callable, seed: int = 0
) -> ShardDataset:
    """The shards of ``spec`` as the ``split`` of a data set: a shard spec is one data set whatever the split
    (write one shard folder per split); ``split`` only chooses the transform (``build_dataset`` passes it)."""
    return ShardDataset(spec, image_size, transform, seed=seed, split=split)
