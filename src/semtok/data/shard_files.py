"""The webdataset shard format semtok writes and reads: file names, ``shards.json``, spec resolution, records.

A shard folder holds ``000000.tar``, ``000001.tar``, ... and ``shards.json`` (written last). Every sample of a
shard is one tar member group with the same ``__key__`` (the zero-padded global index, :data:`KEY_DIGITS` digits):

- ``<key>.jpg`` / ``<key>.png`` / ``<key>.webp``: the image file's original bytes (no re-encode), or a lossless PNG
  of the RGB image for data made by code and for other formats;
- ``<key>.cls``: the label as decimal text (absent when unlabelled);
- ``<key>.json``: ``{"index": int, "split": "train" | "val", "path": relative path (files only),
  "captions": [str, ...] (captioned data only)}``.

``shards.json``: ``{"format": "semtok-shards", "version": 1, "source", "split", "class_names", "num_classes",
"captioned", "shards": [{"name": "000000.tar", "count": int}, ...], "total": int}``. Captioned shard folders also
hold ``captions.jsonl`` (one ``{"index", "captions"}`` per line) so ``captions_of(index)`` works without reading
the tars.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import braceexpand
from PIL import Image

from semtok.errors import SemtokError

__all__ = [
    "CAPTIONS_JSONL",
    "FORMAT",
    "IMAGE_KEYS",
    "KEY_DIGITS",
    "SHARDS_JSON",
    "VERSION",
    "ShardSkippedWarning",
    "count_samples",
    "decode_record",
    "is_shard_spec",
    "read_records",
    "resolve_shards",
]

SHARDS_JSON = "shards.json"
CAPTIONS_JSONL = "captions.jsonl"
FORMAT = "semtok-shards"
VERSION = 1
KEY_DIGITS = 9
IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")


class ShardSkippedWarning(UserWarning):
    """A truncated / corrupt shard or sample was skipped (the message names the shard)."""


def is_shard_spec(spec: str | os.PathLike) -> bool:
    """Whether a data set spec names shards: a ``.tar`` path or brace pattern, or a folder with ``shards.json``."""
    text = str(spec)
    if text.endswith(".tar"):
        return True
    path = Path(text).expanduser()
    return path.is_dir() and (path / SHARDS_JSON).is_file()


def _read_info(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SemtokError(f"shard index '{path}': not readable JSON ({error})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT or not isinstance(info.get("shards"), list):
        raise SemtokError(f"shard index '{path}': expected a {FORMAT} file with a 'shards' list")
    if int(info.get("version", 0)) > VERSION:
        raise SemtokError(f"shard index '{path}': format version {info['version']} is newer than {VERSION}")
    return info


def resolve_shards(spec: str | os.PathLike) -> tuple[list[str], list[int], dict[str, Any]]:
    """(shard paths, sample count of each, index info) of a shard folder or a ``.tar`` (brace) pattern.

    A folder is read from its ``shards.json``. A pattern is brace-expanded (webdataset's ``{000000..000127}``
    syntax); every expanded name must exist. Its counts and metadata come from a ``shards.json`` beside the files
    when there is one, else from the tars' member names (labels then unknown: ``class_names`` empty).
    """
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        info = _read_info(path / SHARDS_JSON)
        urls, counts = [], []
        for entry in info["shards"]:
            shard = path / str(entry["name"])
            if not shard.is_file():
                raise SemtokError(
                    f"shard folder '{path}': {SHARDS_JSON} lists {entry['name']}, which is missing"
                )
            urls.append(str(shard))
            counts.append(int(entry["count"]))
        return urls, counts, info
    names = [str(Path(name).expanduser()) for name in braceexpand.braceexpand(text)]
    present = [name for name in names if Path(name).is_file()]
    if not present:
        raise SemtokError(f"shard pattern {text!r}: matches no file")
    if len(present) < len(names):
        missing = next(name for name in names if not Path(name).is_file())
        raise SemtokError(
            f"shard pattern {text!r}: {len(names) - len(present)} of {len(names)} missing ({missing})"
        )
    index = Path(present[0]).parent / SHARDS_JSON
    info = _read_info(index) if index.is_file() else {"class_names": [], "num_classes": 0, "captioned": False}
    listed = {str(entry["name"]): int(entry["count"]) for entry in info.get("shards", [])}
    counts = [
        listed[Path(name).name] if Path(name).name in listed else count_samples(name) for name in present
    ]
    return present, counts, info


def count_samples(url: str) -> int:
    """The number of distinct keys in a tar (reads the member headers only); 0 for an unreadable file."""
    keys = set()
    try:
        with tarfile.open(url, "r:") as tar:
            for member in tar:
                if member.isreg() and "." in member.name:
                    keys.add(member.name.split(".", 1)[0])
    except (OSError, tarfile.TarError):
        pass
    return len(keys)


def read_records(url: str, warned: set[str] | None = None) -> Iterator[dict[str, Any]]:
    """The raw samples (``{"__key__", "jpg"/"png"/..., "cls", "json"}`` as bytes) of one shard, in tar order.

    A truncated or corrupt tar yields the samples before the damage and warns once (``ShardSkippedWarning``
    naming the shard; ``warned`` collects the shards already warned about), never raises.
    """
    from webdataset.tariterators import tarfile_samples

    def handler(error: Exception) -> bool:
        if warned is None or url not in warned:
            warnings.warn(
                f"shard '{url}': skipped the rest of it ({type(error).__name__}: {error.args[0] if error.args else ''})",
                ShardSkippedWarning,
                stacklevel=2,
            )
            if warned is not None:
                warned.add(url)
        return False  # stop reading this shard

    yield from tarfile_samples([{"url": url}], handler=handler)


def decode_record(record: dict[str, Any]) -> tuple[Image.Image, int, int, list[str] | None]:
    """(RGB PIL image, label (-1 unlabelled), global index, captions or None) of a raw record; raises on bad data."""
    from semtok.data.folder import to_rgb

    key = next((k for k in IMAGE_KEYS if k in record), None)
    if key is None:
        raise ValueError(
            f"sample {record.get('__key__')!r} has no image (expected one of {', '.join(IMAGE_KEYS)})"
        )
    with Image.open(io.BytesIO(record[key])) as image:
        image.load()
        rgb = to_rgb(image)
    meta = json.loads(record["json"]) if "json" in record else {}
    label = int(record["cls"]) if "cls" in record else -1
    index = int(meta["index"]) if "index" in meta else int(record["__key__"])
    captions = meta.get("captions")
    return rgb, label, index, list(captions) if captions is not None else None
