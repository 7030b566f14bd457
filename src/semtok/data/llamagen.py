"""LlamaGen's pre-extracted code folders (``autoregressive/train/extract_codes_c2i.py``), both ways.

LlamaGen's layout, which :func:`write_llamagen` writes and :func:`read_llamagen` reads:

- ``DIR/{dataset}{image_size}_codes/{i}.npy``: the codes of image ``i`` (``i`` = 0 .. N-1, the image's index in
  the data set), int64 ``[1, views, h*w]`` in raster order: all augmented views of one image in one file (LlamaGen
  saves ``[1, 10, h*w]`` with ``--ten-crop``, else ``[1, 2, h*w]``: the image and its flip);
- ``DIR/{dataset}{image_size}_labels/{i}.npy``: its class label, int64 ``[1]``;
- ``DIR/semtok.json`` (semtok's addition; LlamaGen ignores it): ``{"format": "semtok-llamagen", "version": 1,
  "codes_dir", "labels_dir", "num_images", "views", "grid": [h, w], "num_codes", "num_classes", "class_names",
  "tokenizer", "data"}``.

LlamaGen's ``train_c2i.py`` reads ``{code_path}/imagenet{image_size}_codes``, so ``dataset`` defaults to
``"imagenet"``; its data set picks one random view per item only when the code folder's path contains ``flip``.

Read back, a folder is presented as a semtok token file: ids ``[views * N, h, w]`` with view-major rows (row
``view * N + i``, as ``semtok tokenize --views`` writes them) and labels ``[views * N]``. The grid and the codebook
size come from ``semtok.json``; a folder without one (written by LlamaGen itself) gets a square grid from the code
length and ``num_codes`` = the largest id + 1 (a warning says so; write a ``semtok.json`` with ``grid`` and
``num_codes`` to set them), and ``num_classes`` = the largest label + 1.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from semtok.errors import SemtokError
from semtok.hub.files import atomic_write

FORMAT = "semtok-llamagen"
MANIFEST = "semtok.json"
_INDEX = re.compile(r"^(\d+)\.npy$")


def is_llamagen_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder (LlamaGen code folders are folders; semtok token files are files)."""
    return Path(path).is_dir()


def write_llamagen(token_file: str | Path, out_dir: str | Path, dataset: str = "imagenet") -> Path:
    """Convert a semtok token file into LlamaGen's layout under ``out_dir``; returns ``out_dir/semtok.json``.

    The token file's view-major rows ``[views * N, h, w]`` become ``N`` code files ``[1, views, h*w]`` int64 and
    ``N`` label files ``[1]`` int64 (the first view's label; every view of an image shares it; -1 = unlabelled).
    """
    from semtok.data.token_file import read_token_file

    ids, labels, manifest = read_token_file(token_file)
    data = manifest.get("data", {})
    views = int(data.get("views", 1) or 1)
    rows, h, w = ids.shape
    if rows % views:
        raise SemtokError(f"token file '{token_file}': {rows} rows is not a multiple of its {views} views")
    count = rows // views
    size = data.get("image_size") or manifest.get("tokenizer", {}).get("config", {}).get("image_size", "")
    codes_dir, labels_dir = f"{dataset}{size}_codes", f"{dataset}{size}_labels"
    out_dir = Path(out_dir)
    for name in (codes_dir, labels_dir):
        (out_dir / name).mkdir(parents=True, exist_ok=True)
    by_image = np.asarray(ids).reshape(views, count, h * w)
    for i in range(count):
        codes = by_image[:, i].astype(np.int64)[None]  # [1, views, h*w]
        np.save(out_dir / codes_dir / f"{i}.npy", codes)
        np.save(out_dir / labels_dir / f"{i}.npy", np.asarray(labels[i : i + 1], dtype=np.int64))
    meta = {
        "format": FORMAT,
        "version": 1,
        "codes_dir": codes_dir,
        "labels_dir": labels_dir,
        "num_images": count,
        "views": views,
        "grid": [h, w],
        "num_codes": int(manifest["num_codes"]),
        "num_classes": int(manifest.get("num_classes") or 0),
        "class_names": list(manifest.get("class_names", [])),
        "tokenizer": manifest.get("tokenizer", {}),
        "data": data,
    }
    path = out_dir / MANIFEST
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))
    return path


def _folders(root: Path, meta: dict[str, Any]) -> tuple[Path, Path]:
    """The (codes, labels) folders of ``root``: named by semtok.json, else the one ``*_codes`` / ``*_labels``
    pair (or ``codes`` / ``labels``)."""
    if "codes_dir" in meta:
        return root / str(meta["codes_dir"]), root / str(meta.get("labels_dir", ""))
    pairs = sorted(
        (child, root / (child.name[: -len("codes")] + "labels"))
        for child in root.iterdir()
        if child.is_dir() and (child.name.endswith("_codes") or child.name == "codes")
    )
    pairs = [(codes, labels) for codes, labels in pairs if labels.is_dir()]
    if len(pairs) != 1:
        found = ", ".join(codes.name for codes, _ in pairs) or "none"
        raise SemtokError(
            f"LlamaGen code folder '{root}': expected one NAME_codes/ + NAME_labels/ pair (as extract_codes_c2i.py "
            f"writes), found {found}"
        )
    return pairs[0]


def _numbered(folder: Path, what: str) -> list[Path]:
    """``folder/0.npy`` .. ``folder/{N-1}.npy`` in index order; a gap or a stray name is one SemtokError."""
    if not folder.is_dir():
        raise SemtokError(f"LlamaGen {what} folder '{folder}' does not exist")
    indices = {}
    for child in folder.iterdir():
        match = _INDEX.match(child.name)
        if match is None:
            raise SemtokError(f"LlamaGen {what} folder '{folder}': '{child.name}' is not named INDEX.npy")
        indices[int(match.group(1))] = child
    missing = next((i for i in range(len(indices)) if i not in indices), None)
    if missing is not None:
        raise SemtokError(
            f"LlamaGen {what} folder '{folder}': {missing}.npy is missing (files must be 0..N-1)"
        )
    return [indices[i] for i in range(len(indices))]


def _load(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise SemtokError(f"'{path}' is not a readable .npy array ({str(error).splitlines()[0]})") from None
    if array.dtype.kind not in "ui":
        raise SemtokError(f"'{path}' holds {array.dtype} values, expected integers")
    return array


def read_llamagen(
    root: str | Path, grid: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A LlamaGen code folder as (ids [views*N, h, w] uint16/int32, labels [views*N] int64, a token manifest).

    ``grid``: the token grid when the folder has no ``semtok.json`` (default: square). The manifest has the keys of
    a semtok token manifest (``grid``, ``num_codes``, ``num_classes``, ``data.views``...) plus ``source``: where
    its grid and codebook size came from. Every file is read once (N small files: seconds per 100,000).
    """
    from semtok.data.token_file import FORMAT as TOKEN_FORMAT
    from semtok.data.token_file import read_json_file, token_dtype

    root = Path(root)
    meta: dict[str, Any] = {}
    if (root / MANIFEST).is_file():
        meta = read_json_file(root / MANIFEST, "LlamaGen code manifest")
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise SemtokError(f"'{root / MANIFEST}' is not a {FORMAT} manifest")
    codes_dir, labels_dir = _folders(root, meta)
    code_files, label_files = _numbered(codes_dir, "codes"), _numbered(labels_dir, "labels")
    if len(code_files) != len(label_files) or not code_files:
        raise SemtokError(
            f"LlamaGen code folder '{root}': {len(code_files)} code files and {len(label_files)} label files, "
            "expected the same positive number"
        )
    codes, labels = [], []
    for code_path, label_path in zip(code_files, label_files):
        array = _load(code_path)
        array = array[0] if array.ndim == 3 and array.shape[0] == 1 else array
        if array.ndim != 2 or (codes and array.shape != codes[0].shape):
            want = f"[1, {codes[0].shape[0]}, {codes[0].shape[1]}]" if codes else "[1, views, h*w]"
            raise SemtokError(f"'{code_path}' has shape {list(_load(code_path).shape)}, expected {want}")
        label = _load(label_path).reshape(-1)
        if label.size != 1:
            raise SemtokError(f"'{label_path}' has {label.size} values, expected one label [1]")
        codes.append(array)
        labels.append(int(label[0]))
    views, length = codes[0].shape
    stacked = np.stack(codes)  # [N, views, h*w]
    if "grid" in meta:
        grid, grid_from = tuple(int(v) for v in meta["grid"]), MANIFEST
    elif grid is not None:
        grid, grid_from = tuple(grid), "given"
    else:
        side = math.isqrt(length)
        if side * side != length:
            raise SemtokError(
                f"LlamaGen code folder '{root}': codes of length {length} are not a square grid; write "
                f"'{root / MANIFEST}' with its \"grid\": [h, w]"
            )
        grid, grid_from = (side, side), "square code length"
    if grid[0] * grid[1] != length:
        raise SemtokError(
            f"LlamaGen code folder '{root}': grid {list(grid)} does not hold codes of length {length}"
        )
    if int(stacked.min()) < 0:
        raise SemtokError(f"LlamaGen code folder '{root}': negative code ids")
    if "num_codes" in meta:
        num_codes, codes_from = int(meta["num_codes"]), MANIFEST
        if int(stacked.max()) >= num_codes:
            raise SemtokError(
                f"LlamaGen code folder '{root}': id {int(stacked.max())} is outside the {num_codes} codes "
                f"'{root / MANIFEST}' names"
            )
    else:
        num_codes, codes_from = int(stacked.max()) + 1, "largest id + 1"
        warnings.warn(
            f"LlamaGen code folder '{root}' has no {MANIFEST}: num_codes {num_codes} (largest id + 1) and grid "
            f'{list(grid)} ({grid_from}); write {MANIFEST} with "num_codes" and "grid" to set them',
            stacklevel=2,
        )
    ids = stacked.transpose(1, 0, 2).reshape(views * len(codes), *grid).astype(token_dtype(num_codes))
    label_array = np.tile(np.asarray(labels, dtype=np.int64), views)
    num_classes = int(meta.get("num_classes") or max(int(label_array.max()) + 1, 0))
    data = dict(meta.get("data") or {})
    data.update({"views": views, "images_per_view": len(codes), "row_order": "view-major"})
    manifest = {
        "format": TOKEN_FORMAT,
        "version": 1,
        "ids_file": codes_dir.name,
        "labels_file": labels_dir.name,
        "num_images": int(ids.shape[0]),
        "grid": list(grid),
        "num_codes": num_codes,
        "dtype": np.dtype(token_dtype(num_codes)).name,
        "num_classes": num_classes,
        "class_names": list(meta.get("class_names", [])),
        "tokenizer": meta.get("tokenizer", {}),
        "data": data,
        "source": {
            "format": "llamagen",
            "path": str(root),
            "grid_from": grid_from,
            "num_codes_from": codes_from,
        },
    }
    return ids, label_array, manifest
