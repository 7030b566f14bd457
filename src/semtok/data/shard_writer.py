"""Write any data set ``build_dataset`` reads as webdataset tar shards (format: :mod:`semtok.data.shard_files`).

Images that are JPEG / PNG / WEBP files on disk are stored as their original bytes; everything else (data made
by code such as ``mnist5k`` -- at its native 28 px; ``mnist5k-captioned`` at 32 px -- or other file formats) as a
lossless PNG of the RGB image. Samples are written in a seeded shuffled order (``shuffle_seed``; None keeps the
source order) so that a shard is a random sample of the data set, which the training stream's within-shard
shuffle relies on; ``__key__`` / ``json["index"]`` stay the sample's index in the source order (train before val
for ``split="all"``). Every shard is written under a temporary name and renamed; ``shards.json`` comes last.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from semtok.data.build import BUILTIN_DATASETS, build_dataset
from semtok.data.folder import to_rgb
from semtok.data.folder_scan import warn_skipped
from semtok.data.shard_files import CAPTIONS_JSONL, FORMAT, KEY_DIGITS, SHARDS_JSON, VERSION, is_shard_spec
from semtok.errors import SemtokError

__all__ = ["SHARD_SPLITS", "write_shards"]

SHARD_SPLITS = ("train", "val", "all")
_ORIGINAL = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


@dataclass
class _Item:
    dataset: Any
    position: int  # index inside its split's data set
    split: str


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _image_entry(dataset: Any, position: int) -> tuple[str, bytes, str | None]:
    """(extension, bytes, source path or None) of one item; raises whatever PIL raises on a bad file."""
    if hasattr(dataset, "samples"):  # an image folder: the file itself when its format allows
        path = dataset.samples[position][0]
        with Image.open(path) as image:
            ext = _ORIGINAL.get(image.format or "")
            if ext is None:
                image.load()
                return "png", _png(to_rgb(image)), path
        return ext, Path(path).read_bytes(), path
    pixels = dataset.images_uint8[position].permute(1, 2, 0).contiguous().numpy()  # made by code: HW3 uint8
    return "png", _png(Image.fromarray(pixels, mode="RGB")), None


def _label(dataset: Any, position: int) -> int:
    if hasattr(dataset, "samples"):
        return int(dataset.samples[position][1])
    return int(dataset.labels[position])


def _open_split(source: str, split: str) -> Any:
    name = source.lower()
    size = 28 if name == "mnist5k" else 32  # made by code: its native size; folders ignore it
    return build_dataset(source, split, size)


def _sample(item: _Item, index: int, root: Path | None) -> dict[str, Any] | None:
    dataset, position = item.dataset, item.position
    try:
        ext, data, path = _image_entry(dataset, position)
    except Exception as error:  # an unreadable file is skipped (warned by name), not fatal
        path = dataset.samples[position][0]
        dataset.skipped_files.append(path)
        warn_skipped([(path, f"{type(error).__name__}: {error}")], "shard writing")
        return None
    meta: dict[str, Any] = {"index": index, "split": item.split}
    if path is not None and root is not None:
        meta["path"] = Path(os.path.relpath(path, root)).as_posix()
    if hasattr(dataset, "captions_of"):
        meta["captions"] = dataset.captions_of(position)
    sample = {"__key__": f"{index:0{KEY_DIGITS}d}", ext: data, "json": json.dumps(meta).encode()}
    label = _label(dataset, position)
    if label >= 0:
        sample["cls"] = str(label).encode()
    return sample


def _chunks(order: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(order), size):
        yield order[start : start + size]


def _replace_json(path: Path, value: Any) -> None:
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(json.dumps(value, indent=1))
    os.replace(temporary, path)


def write_shards(
    source: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    shard_size: int = 1000,
    split: str = "all",
    shuffle_seed: int | None = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``split`` ("train" | "val" | "all" = train then val) of ``source`` (any ``build_dataset`` spec) as
    ``out_dir/000000.tar``, ... of ``shard_size`` samples each, then ``shards.json``; returns its content."""
    from webdataset import TarWriter

    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size <= 0:
        raise SemtokError(f"--shard-size: expected a positive integer, got {shard_size!r}")
    if split not in SHARD_SPLITS:
        raise SemtokError(f"--split: expected train, val or all, got {split!r}")
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise SemtokError(f"--out '{out}': exists and is not a folder")
    if out.is_dir() and ((out / SHARDS_JSON).exists() or any(out.glob("*.tar"))):
        raise SemtokError(f"--out '{out}': already holds shards; remove them or choose another folder")
    text = str(source)
    if is_shard_spec(text):
        raise SemtokError(
            f"SOURCE '{text}': is already shards; expected a data set (mnist5k or an image folder)"
        )
    # Split "all" reads both splits and concatenates them (train first).
    datasets = {name: _open_split(text, name) for name in (("train", "val") if split == "all" else (split,))}
    items = [_Item(dataset, i, name) for name, dataset in datasets.items() for i in range(len(dataset))]
    first = next(iter(datasets.values()))
    order = list(range(len(items)))
    if shuffle_seed is not None:
        order = np.random.default_rng(shuffle_seed).permutation(len(items)).tolist()
    root = None if text.lower() in BUILTIN_DATASETS else Path(text).expanduser().resolve()
    captioned = hasattr(first, "captions_of")
    out.mkdir(parents=True, exist_ok=True)
    shards, captions = [], []
    bar = tqdm(total=len(items), desc="shards", unit="img", disable=not progress, dynamic_ncols=True)
    for number, chunk in enumerate(_chunks(order, shard_size)):
        name = f"{number:06d}.tar"
        temporary = out / f".{name}.partial"
        count = 0
        with open(temporary, "wb") as stream, TarWriter(stream, encoder=False, mtime=0.0) as writer:
            for index in chunk:
                sample = _sample(items[index], index, root)
                bar.update(1)
                if sample is None:
                    continue
                writer.write(sample)
                count += 1
                if captioned:
                    captions.append({"index": index, "captions": json.loads(sample["json"])["captions"]})
        os.replace(temporary, out / name)
        shards.append({"name": name, "count": count})
    bar.close()
    if captioned:
        captions.sort(key=lambda row: row["index"])
        temporary = out / f".{CAPTIONS_JSONL}.partial"
        temporary.write_text("".join(json.dumps(row) + "\n" for row in captions))
        os.replace(temporary, out / CAPTIONS_JSONL)
    info = {
        "format": FORMAT,
        "version": VERSION,
        "source": text if root is None else str(root),
        "split": split,
        "class_names": list(getattr(first, "class_names", [])) if first.num_classes else [],
        "num_classes": int(first.num_classes),
        "captioned": captioned,
        "shuffle_seed": shuffle_seed,
        "shards": shards,
        "total": sum(entry["count"] for entry in shards),
    }
    _replace_json(out / SHARDS_JSON, info)
    return info
