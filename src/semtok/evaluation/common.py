"""Helpers every evaluation shares: batches in index order, evenly spaced subsets, tables and JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from semtok.data.build import dataset_id
from semtok.errors import SemtokError


def iterate_batches(
    dataset: Any, batch_size: int, show: bool, desc: str
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images [B,3,H,W], labels [B]) batches of a dataset in index order."""
    for start in tqdm(range(0, len(dataset), batch_size), desc=desc, disable=not show, leave=False):
        items = [dataset[i] for i in range(start, min(len(dataset), start + batch_size))]
        yield torch.stack([image for image, _ in items]), torch.tensor([label for _, label in items])


def evenly_spaced(dataset: Any, limit: int | None) -> Any:
    """``limit`` items of ``dataset`` at evenly spaced indices ``floor(i * N / limit)`` (all of it for None or
    ``limit >= N``); class-sorted splits keep every class."""
    if limit is None or limit >= len(dataset):
        return dataset
    if limit <= 0:
        raise SemtokError(f"limit: expected a positive number of images, got {limit}")
    subset = torch.utils.data.Subset(dataset, [i * len(dataset) // limit for i in range(limit)])
    for name in ("num_classes", "class_names"):
        if hasattr(dataset, name):
            setattr(subset, name, getattr(dataset, name))
    labels = getattr(dataset, "labels", None)
    if labels is not None:
        subset.labels = torch.as_tensor(labels)[subset.indices]
    return subset


def format_table(results: dict[str, Any]) -> str:
    """A two-column markdown table of the scalar results."""
    rows = ["| metric | value |", "|---|---|"]
    for key, value in results.items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        rows.append(f"| {key} | {value} |")
    return "\n".join(rows)


def write_json(results: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(results, indent=2))
    return path


def fid_reference(
    dataset: Any,
    data: str,
    split: str,
    image_size: int,
    extractor: Any,
    limit: int | None,
    progress: bool,
    features: bool = False,
    labels: str = "auto",
) -> Any:
    """The cached FID reference of ``dataset`` (split ``split`` of data set ``data`` at ``image_size`` px, cut to
    ``limit`` images): ``(mu [2048], sigma [2048, 2048])`` float64, or with ``features`` the pool3 features
    ``[N, 2048]`` float32 (for precision / recall). Computed with ``extractor`` once, then read from the cache,
    which is keyed by :func:`semtok.data.build.dataset_id` (a built-in data set's name, a folder's path), the split
    and, unless "auto", the ``labels`` reading (which can change the image set: "none" reads top-level images)."""
    from semtok.metrics.fid import reference_features, reference_stats

    reference = reference_features if features else reference_stats
    return reference(
        dataset_id(data),
        split if labels == "auto" else f"{split}, labels {labels}",
        image_size,
        extractor,
        lambda: iterate_batches(dataset, 64, False, "reference"),
        limit=limit,
        progress=progress,
    )
