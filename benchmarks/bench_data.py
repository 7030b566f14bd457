"""Benchmark: the training data path, an image folder of JPEGs vs the same images as webdataset shards.

Makes ``--images`` JPEGs of 256x256 (smooth random colour fields plus fine noise, quality 90) in 4 class folders,
writes them as shards (``semtok.data.shard_writer.write_shards``, original bytes), and times the batches the
training engine reads (``semtok.training.batches.batch_stream``: JPEG decode + RandomResizedCrop(224) + flip,
float32 [-1, 1], batch 32) for each DataLoader worker count. images/s counts the batches after the first (worker
start-up excluded). torch uses one thread per process (as DataLoader workers do), so the figures are per worker.

    python benchmarks/bench_data.py [--images 2000] [--workers 0 1 2] [--json benchmarks/results_data.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from semtok.data import build_dataset
from semtok.data.shard_writer import write_shards
from semtok.pipelines.machine import machine_info
from semtok.training.batches import batch_stream


def make_jpegs(root: Path, count: int, seed: int = 0) -> int:
    """``count`` 256x256 JPEGs in 4 class folders; returns their total size in bytes."""
    rng = np.random.default_rng(seed)
    total = 0
    for i in range(count):
        folder = root / f"class{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((256, 256), Image.BICUBIC), dtype=np.int16)
        pixels = np.clip(field + rng.integers(-12, 13, (256, 256, 3)), 0, 255).astype(np.uint8)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        total += path.stat().st_size
    return total


def images_per_second(dataset, workers: int, batches: int, batch_size: int = 32) -> float:
    stream = batch_stream(
        dataset, batch_size, seed=0, start_step=0, rank=0, world_size=1, num_workers=workers
    )
    next(stream)  # worker start-up and the first batch are not timed
    started = time.perf_counter()
    for _ in range(batches):
        images, _, _ = next(stream)
        assert images.shape == (batch_size, 3, 224, 224)
    elapsed = time.perf_counter() - started
    stream.close()
    return batches * batch_size / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=20, help="timed batches of 32 per measurement")
    parser.add_argument("--json", default="benchmarks/results_data.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        folder, shards = Path(tmp) / "jpegs", Path(tmp) / "shards"
        started = time.perf_counter()
        size = make_jpegs(folder, args.images)
        make_seconds = time.perf_counter() - started
        started = time.perf_counter()
        info = write_shards(folder, shards, shard_size=250, split="train", progress=False)
        shard_seconds = time.perf_counter() - started
        sources = {
            "folder": build_dataset(folder, "train", 224, augment="crop_flip"),
            "shards": build_dataset(shards, "train", 224, augment="crop_flip"),
        }
        rows = []
        for workers in args.workers:
            for name, dataset in sources.items():
                rate = images_per_second(dataset, workers, args.batches)
                rows.append({"source": name, "workers": workers, "images_per_s": round(rate, 1)})
                print(f"{name:7s} workers={workers}: {rate:7.1f} images/s", flush=True)
    result = {
        "benchmark": "data path: JPEG decode + RandomResizedCrop(224) + flip, batch 32, batch_stream",
        "images": args.images,
        "jpeg_mb": round(size / 1e6, 1),
        "train_images": len(sources["folder"]),
        "shards": len(info["shards"]),
        "shard_samples": info["total"],
        "make_jpegs_s": round(make_seconds, 1),
        "write_shards_s": round(shard_seconds, 1),
        "timed_images_per_measurement": args.batches * 32,
        "rows": rows,
        "machine": machine_info(),
    }
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
