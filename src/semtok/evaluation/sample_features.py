"""Samples -> what the generation metrics need, batch by batch, over one or many processes.

Each process samples its own global batches (:meth:`semtok.generators.sampler.Sampler.sample_batches`: batch ``j``
seeded by ``j``), quantises them to uint8 (the images a PNG or an ADM ``.npz`` would hold), and keeps per batch
only what the metrics use: Inception pool3 features (+ logits with the full weights), the judge's predicted class,
and the uint8 images when they are asked for (text scores, the grid, the ``.npz`` export). The main process gathers
every process's batches and puts them back in batch order, so the result is the same as one process's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from semtok.data.processes import Processes, in_batch_order
from semtok.generators.sampler import Sampler
from semtok.generators.sampling import SamplingConfig
from semtok.metrics.inception_spatial import pool3_and_spatial
from semtok.metrics.pixel import to_uint8


@dataclass
class SampleFeatures:
    """Every sample's features, in sample order (on the main process).

    ``features`` float64 [N, 2048]; ``logits`` float64 [N, 1008] or None (no full Inception weights);
    ``predicted`` int64 [N] judge classes or None (no judge); ``images`` uint8 [K, 3, H, W]: all N samples with
    ``keep_images``, else the first ``keep_first``; ``seconds``: the slowest process's sampling + feature time;
    ``spatial`` float64 [N, 2023] sFID features (``mixed_6/conv``, first 7 channels) or None.
    """

    features: np.ndarray
    logits: np.ndarray | None
    predicted: np.ndarray | None
    images: torch.Tensor
    seconds: float
    spatial: np.ndarray | None = None


def sample_features(
    sampler: Sampler,
    condition: dict[str, Any],
    sampling: SamplingConfig,
    seed: int,
    batch_size: int,
    extractor: Any,
    judge: Any = None,
    keep_images: bool = False,
    keep_first: int = 64,
    processes: Processes | None = None,
    progress: bool = False,
    spatial: bool = False,
) -> SampleFeatures | None:
    """Sample ``condition`` (``{"labels_B": int64 [N]}`` or ``{"prompts": [N str]}``) and collect the features
    (with ``spatial`` also the sFID features, from the same forward pass); returns them on the main process, None
    on the others."""
    import time

    processes = processes or Processes()
    count = len(condition.get("prompts") or condition.get("labels_B"))
    mine = processes.batches(count, batch_size)
    started = time.time()
    parts: list[tuple[int, dict[str, Any]]] = []
    batches = sampler.sample_batches(
        sampling=sampling, seed=seed, batch_size=batch_size, processes=processes, **condition
    )
    bar = tqdm(
        total=sum(stop - start for _, start, stop in mine), desc="samples", unit="img", disable=not progress
    )
    with bar:
        for index, images, _ in batches:
            uint8 = to_uint8(images)
            logits, part = None, {}
            if spatial:
                features, part["spatial"] = pool3_and_spatial(extractor, uint8)
                if extractor.has_logits:  # the logits need their own pass
                    logits = extractor.features_and_logits(uint8)[1]
            elif extractor.has_logits:
                features, logits = extractor.features_and_logits(uint8)
            else:
                features = extractor(uint8)
            part.update(features=features.astype(np.float32), logits=logits)
            if judge is not None and not sampler.is_text:
                part["predicted"] = judge.classify(images).argmax(dim=1).numpy()
            start = index * batch_size
            if keep_images or start < keep_first:
                part["images"] = uint8 if keep_images else uint8[: keep_first - start]
            parts.append((index, part))
            bar.update(uint8.shape[0])
    seconds = time.time() - started
    gathered = processes.gather((parts, seconds))
    if not processes.is_main:
        return None
    ordered = in_batch_order([part for part, _ in gathered])
    logits = [part["logits"] for part in ordered]
    predicted = [part["predicted"] for part in ordered if "predicted" in part]
    images = [part["images"] for part in ordered if "images" in part]
    return SampleFeatures(
        features=np.concatenate([part["features"] for part in ordered]).astype(np.float64),
        logits=None if logits[0] is None else np.concatenate(logits),
        predicted=np.concatenate(predicted) if predicted else None,
        images=torch.cat(images) if images else torch.zeros(0, dtype=torch.uint8),
        seconds=max(took for _, took in gathered),
        spatial=np.concatenate([part["spatial"] for part in ordered]) if spatial else None,
    )
