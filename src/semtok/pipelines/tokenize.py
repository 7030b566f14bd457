"""Tokenize a data set once, so proposal networks train on memory-mapped token files (``semtok tokenize``).

With augmentation, ``views`` augmented copies of every image are tokenized (as LlamaGen pre-tokenises flips and
crops): view ``k`` of image ``i`` is the data set's augmentation at epoch ``k``, a pure function of
``(seed, k, i)``. Rows are view-major: row ``k * N + i``. The manifest records views, augmentation and seed.

A captioned data set (one with ``captions_of(index) -> list[str]``: ``mnist5k-captioned``, a COCO root, a
``captions.jsonl`` folder) also gets ``OUT.captions.json``: one list of captions per row, views repeating their
image's captions (:mod:`semtok.data.token_captions`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from semtok.config import to_dict
from semtok.data.build import build_dataset
from semtok.data.config import resolve_num_workers
from semtok.data.processes import Processes, in_batch_order
from semtok.data.token_captions import write_token_captions
from semtok.data.token_file import create_partial_ids, finish_token_file, partial_ids_path
from semtok.errors import SemtokError


def tokenize_dataset(
    tokenizer_path: str | Path,
    data: str,
    split: str,
    out: str | Path,
    batch_size: int = 128,
    views: int = 1,
    augment: str = "none",
    crop_scale: tuple[float, float] = (0.08, 1.0),
    seed: int = 0,
    progress: bool = True,
    num_workers: int = -1,
    processes: Processes | None = None,
    labels: str = "auto",
) -> Path | None:
    """Token ids of a whole data split, written as a token file; returns the manifest path ``OUT.json``.

    ``OUT.npy``: ids ``[views * N, h, w]`` (uint16 for codebooks of at most 65,536 codes, else int32) in
    ``[0, num_codes)``; ``OUT.labels.npy``: int64 ``[views * N]`` (-1 = unlabelled). ``views`` > 1 needs
    ``augment`` "flip" or "crop_flip" (random resized crops of ``crop_scale`` of the area, then a flip) on the
    train split or "all" (every view would otherwise be the same image); rows are view-major. ``split``: "train",
    "val" or "all" (every image of the data set); ``labels``: how an image folder's labels are read ("auto",
    "folders", "none": :func:`~semtok.data.build.build_dataset`); the manifest records both. ``tokenizer_path``: a run
    folder or a tokenizer folder. Read the result with :func:`semtok.load_tokens`. A captioned data set also
    writes ``OUT.captions.json`` (one list of str per row; read it with
    :func:`semtok.data.token_captions.read_token_captions`), named by the manifest's ``captions_file``; its
    ``data.captions`` records ``{"images": N, "captions": the captions of the N images}`` (one view's worth), plus
    the data set's ``caption_report`` counts (images without captions, captions without images) when it has one.

    ``num_workers``: DataLoader workers that decode and augment (-1: ``data.num_workers``'s auto rule,
    :func:`semtok.data.config.resolve_num_workers`). ``processes``
    (:func:`semtok.data.processes.join`): each process encodes every ``world_size``-th batch straight into the one ids
    file (a memory-mapped ``OUT.npy.partial``, renamed when complete; the processes need a shared file system); the
    main process writes labels, captions and manifest and returns the manifest path, the others None. The file is
    the same whatever the number of processes.
    """
    from semtok.hub.pretrained import resolve_model_dir
    from semtok.tokenizers.base import Tokenizer

    if batch_size < 1:
        raise SemtokError(f"batch_size: expected an int >= 1, got {batch_size}")
    if views < 1:
        raise SemtokError(f"views: expected a positive number of views, got {views}")
    if views > 1 and (augment == "none" or split == "val"):
        raise SemtokError(
            f"views {views}: several views need augment 'flip' or 'crop_flip' on the train split or all"
        )
    label_mode = labels  # (``labels`` below: the rows' labels)
    tokenizer_dir = resolve_model_dir(tokenizer_path, "tokenizer")
    tokenizer = Tokenizer.from_pretrained(tokenizer_dir)
    size = tokenizer.config.image_size
    dataset = build_dataset(
        data, split, size, augment=augment, crop_scale=crop_scale, seed=seed, labels=label_mode
    )
    captioned = hasattr(dataset, "captions_of") and getattr(dataset, "captioned", True)  # shards say it
    processes = processes or Processes()
    encode = _encode_stream if getattr(dataset, "is_stream", False) else _encode_indexed
    workers = resolve_num_workers(num_workers, dataset)
    done = encode(tokenizer, dataset, out, views, batch_size, workers, processes, progress)
    if done is None:  # not the main process: it wrote its rows; the main one writes the rest
        processes.barrier()
        return None
    labels, captions, count = done
    meta: dict[str, Any] = {
        "tokenizer": {
            "path": str(tokenizer_dir.resolve()),
            "kind": tokenizer.kind,
            "config": to_dict(tokenizer.config),
        },
        "data": {
            "dataset": str(data),
            "split": split,
            "labels": label_mode,
            "image_size": size,
            "augment": augment,
            "crop_scale": list(crop_scale) if augment == "crop_flip" else None,
            "seed": seed,
            "views": views,
            "images_per_view": count,
            "row_order": "view-major: row = view * images_per_view + image",
        },
        "num_classes": getattr(dataset, "num_classes", 0),
        "class_names": list(getattr(dataset, "class_names", [])),
        "skipped_files": list(getattr(dataset, "skipped_files", [])),
    }
    if captioned:
        first_view = captions[:count]
        meta["data"]["captions"] = {
            "images": len(first_view),
            "captions": sum(len(rows) for rows in first_view),
            **getattr(dataset, "caption_report", {}),
        }
        meta["captions_file"] = write_token_captions(out, captions).name
    manifest = finish_token_file(out, labels, tokenizer.num_codes, meta)
    processes.barrier()
    return manifest


def _shared_ids(out: str | Path, num_rows: int, tokenizer: Any, processes: Processes) -> np.ndarray:
    """The partial ids file ``[num_rows, h, w]`` every process writes its rows into: created by the main process,
    opened (memory-mapped, writable) by each once it exists."""
    if processes.is_main:
        create_partial_ids(out, num_rows, tuple(tokenizer.grid_size), tokenizer.num_codes)
    processes.barrier()
    return np.load(partial_ids_path(out), mmap_mode="r+")


def _encode_indexed(
    tokenizer: Any,
    dataset: Any,
    out: str | Path,
    views: int,
    batch_size: int,
    num_workers: int,
    processes: Processes,
    progress: bool,
) -> tuple[torch.Tensor, list[list[str]], int] | None:
    """Encode a map-style data set: each process its global batches, straight into the shared partial ids file
    (row ``view * N + i``). The main process gets (labels [views * N], captions per row, N), the others None."""
    count = len(dataset)
    ids_file = _shared_ids(out, views * count, tokenizer, processes)
    mine = processes.batches(count, batch_size)
    num_batches = -(-count // batch_size)
    parts: list[tuple[int, tuple[torch.Tensor, list[list[str]]]]] = []
    total = views * sum(stop - start for _, start, stop in mine)
    with tqdm(total=total, desc="tokenize", unit="img", disable=not progress) as bar:
        for view in range(views):
            if hasattr(dataset, "set_epoch"):
                dataset.set_epoch(view)
            loader = torch.utils.data.DataLoader(
                _WithCaptions(dataset),
                batch_sampler=[list(range(start, stop)) for _, start, stop in mine],
                num_workers=num_workers,
                collate_fn=_collate,
            )
            for (index, start, stop), (images, labels, captions) in zip(mine, loader, strict=True):
                with torch.inference_mode():
                    ids = tokenizer.encode(images)
                ids_file[view * count + start : view * count + stop] = ids.numpy()
                parts.append((view * num_batches + index, (labels, captions)))
                bar.update(stop - start)
    ids_file.flush()
    del ids_file
    gathered = in_batch_order(processes.gather(parts))
    if not processes.is_main:
        return None
    labels = torch.cat([labels for labels, _ in gathered]) if gathered else torch.zeros(0, dtype=torch.long)
    return labels, [row for _, rows in gathered for row in rows], count


def _encode_stream(
    tokenizer: Any,
    dataset: Any,
    out: str | Path,
    views: int,
    batch_size: int,
    num_workers: int,
    processes: Processes,
    progress: bool,
) -> tuple[torch.Tensor, list[list[str]], int] | None:
    """Encode streamed shards (epoch mode: each process and worker reads its own shards): rows sorted by (view,
    the sample's global index), so the file is the same whatever the number of processes, workers or the shard
    order. Each process keeps its own ids until the rows are known, then writes them into the shared file."""
    mine: list[tuple[int, np.ndarray, np.ndarray]] = []  # (view, global indices [b], ids [b, h, w]) per batch
    keys: list[tuple[int, int, int, list[str]]] = []  # (view, index, label, captions)
    dataset.rank, dataset.world_size = processes.rank, processes.world_size  # workers cannot ask the group
    with tqdm(desc="tokenize", unit="img", disable=not progress) as bar:
        for view in range(views):
            dataset.set_epoch(view)
            loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
            for images, labels, indices in loader:
                with torch.inference_mode():
                    ids = tokenizer.encode(images)
                mine.append((view, indices.numpy(), ids.numpy()))
                for index, label in zip(indices.tolist(), labels.tolist(), strict=True):
                    captions = dataset.captions_of(index) if getattr(dataset, "captioned", False) else []
                    keys.append((view, index, label, captions))
                bar.update(images.shape[0])
    everything = sorted((key for part in processes.gather(keys) for key in part), key=lambda k: k[:2])
    order = {(view, index): row for row, (view, index, _, _) in enumerate(everything)}
    count = len(everything) // views
    ids_file = _shared_ids(out, len(everything), tokenizer, processes)
    for view, indices, ids in mine:
        ids_file[[order[view, int(i)] for i in indices]] = ids
    ids_file.flush()
    del ids_file
    processes.barrier()
    if not processes.is_main:
        return None
    labels = torch.tensor([label for _, _, label, _ in everything], dtype=torch.long)
    return labels, [captions for _, _, _, captions in everything], count


class _WithCaptions(torch.utils.data.Dataset):
    """(image, label, captions) items: the captions (empty without any) are read in the process that loaded the
    image, so an undecodable image's replacement (found inside a DataLoader worker) brings its own captions."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, list[str]]:
        image, label = self.dataset[index]
        captions = self.dataset.captions_of(index) if hasattr(self.dataset, "captions_of") else []
        return image, label, captions


def _collate(
    items: list[tuple[torch.Tensor, int, list[str]]],
) -> tuple[torch.Tensor, torch.Tensor, list[list[str]]]:
    images, labels, captions = zip(*items, strict=True)
    return torch.stack(images), torch.tensor(labels), list(captions)
