"""How long the image-folder scan takes at ImageNet scale (issue 13 section 2).

    python benchmarks/bench_folder_scan.py [--classes 1000] [--per-class 100] [--out benchmarks/results_folder_scan.json]

Writes ``classes x per_class`` tiny valid PNG files (the same 69 bytes each, 8x8 RGB; ImageNet's layout: one folder
per class, ``n0...`` names) into a temporary folder, then times, each on a cold process-level state (the OS page
cache is warm: the files were just written, as on a machine that has read the data set once):
- ``scan_image_folder(root, check_headers=False)``: listing + labels only;
- ``scan_image_folder(root)``: plus the header check (``Image.open`` of every file), once on a cold scan cache and
  once more (a hit: the listing's fingerprint, ``semtok.data.scan_cache``); the cache lives in the temporary folder;
- ``build_dataset(root, "train", 32)``: what a training run does before its first step (scan with header check +
  the deterministic 90/10 split).
Reports files/s and the projection to ImageNet-1k's 1,281,167 train images (linear in the number of files, the
same machine). The folder is deleted afterwards.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from semtok.data import build_dataset
from semtok.data.folder_scan import scan_image_folder
from semtok.pipelines.machine import machine_info

IMAGENET_TRAIN = 1_281_167


def tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def write_tree(root: Path, classes: int, per_class: int) -> tuple[int, float]:
    data = tiny_png()
    start = time.perf_counter()
    for c in range(classes):
        folder = root / f"n{c:08d}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            with open(folder / f"n{c:08d}_{i}.png", "wb") as handle:
                handle.write(data)
    return len(data), time.perf_counter() - start


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--out", default="benchmarks/results_folder_scan.json")
    parser.add_argument(
        "--label", default="", help="a note stored with the run (e.g. before / after a change)"
    )
    args = parser.parse_args()
    files = args.classes * args.per_class
    tmp = Path(tempfile.mkdtemp(prefix="semtok-scan-"))
    os.environ["SEMTOK_CACHE"] = str(tmp / "cache")  # a cold scan cache, deleted with the folder
    try:
        root = tmp / "imagenet-like"
        size, write_seconds = write_tree(root, args.classes, args.per_class)
        print(f"wrote {files} files of {size} bytes in {write_seconds:.1f} s under {root}")
        rows = {}
        for name, fn in (
            ("scan, no header check", lambda: scan_image_folder(root, check_headers=False)),
            ("scan + header check (first scan: cache miss)", lambda: scan_image_folder(root)),
            ("scan + header check (again: cache hit)", lambda: scan_image_folder(root)),
            ("build_dataset train (scan, cache hit, + split)", lambda: build_dataset(root, "train", 32)),
        ):
            seconds, result = timed(fn)
            count = len(result.samples)
            rows[name] = {
                "seconds": round(seconds, 3),
                "items": count,
                "files_per_s": round(files / seconds),
                "projected_imagenet_seconds": round(seconds * IMAGENET_TRAIN / files, 1),
            }
            print(
                f"{name}: {seconds:.2f} s ({files / seconds:,.0f} files/s; {count} items) -> "
                f"{seconds * IMAGENET_TRAIN / files:.0f} s projected for {IMAGENET_TRAIN:,} files"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "label": args.label,
        "files": files,
        "classes": args.classes,
        "file_bytes": size,
        "write_seconds": round(write_seconds, 2),
        "rows": rows,
        "projection": f"linear in the file count to {IMAGENET_TRAIN} files (ImageNet-1k train), same machine",
        "machine": machine_info(),
    }
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.exists() else {}
    runs = [run for run in previous.get("runs", []) if run.get("label") != args.label]
    out.write_text(json.dumps({"runs": [*runs, result]}, indent=2) + "\n")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
