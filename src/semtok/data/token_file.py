"""Pre-tokenised data sets: token ids in one .npy file plus a JSON manifest.

Format (``NAME.npy`` + ``NAME.json`` + ``NAME.labels.npy``):
- ``NAME.npy``: ids, shape ``[N, h, w]``, dtype uint16 when the codebook has at most 65,536 codes, else int32;
  a plain NumPy file, so ``np.load(path, mmap_mode="r")`` memory-maps it.
- ``NAME.labels.npy``: int64 ``[N]`` class labels (-1 where the data set has none).
- ``NAME.json``: ``{"format": "semtok-tokens", "version": 1, "ids_file", "labels_file", "num_images", "grid": [h, w],
  "num_codes", "dtype", "tokenizer": {"path", "kind", "config"}, "data": {"dataset", "split", "image_size",
  "augment"}, "num_classes", "class_names"}``, and optionally ``"captions_file": "NAME.captions.json"``.
- ``NAME.captions.json`` (captioned data sets only): one list of captions per row,
  :mod:`semtok.data.token_captions`; the manifest's ``data.captions`` then records ``{"images", "captions"}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semtok.errors import SemtokError
from semtok.hub.files import atomic_write

FORMAT = "semtok-tokens"


def token_paths(out: str | Path) -> tuple[Path, Path, Path]:
    """(ids .npy, labels .npy, manifest .json) paths for an output name with or without .npy."""
    out = Path(out)
    stem = out.with_suffix("") if out.suffix in (".npy", ".json") else out
    return stem.with_suffix(".npy"), stem.parent / f"{stem.name}.labels.npy", stem.with_suffix(".json")


def token_dtype(num_codes: int) -> type:
    """The ids' dtype for a codebook of ``num_codes``: uint16 up to 65,536 codes, else int32."""
    return np.uint16 if num_codes <= 65536 else np.int32


def write_token_file(
    out: str | Path, ids_NHW: torch.Tensor, labels_N: torch.Tensor, num_codes: int, meta: dict[str, Any]
) -> Path:
    """Write ids [N, h, w] (int64 in [0, num_codes)), labels [N] and the manifest; returns the manifest path."""
    ids_path = token_paths(out)[0]
    ids_path.parent.mkdir(parents=True, exist_ok=True)
    ids = ids_NHW.cpu().numpy().astype(token_dtype(num_codes))
    atomic_write(ids_path, lambda tmp: np.save(open(tmp, "wb"), ids))  # noqa: SIM115
    return _write_labels_and_manifest(out, ids.shape, labels_N, num_codes, meta)


def partial_ids_path(out: str | Path) -> Path:
    """Where :func:`create_partial_ids` puts the ids while they are written (``NAME.npy.partial``)."""
    ids_path = token_paths(out)[0]
    return ids_path.with_name(ids_path.name + ".partial")


def create_partial_ids(out: str | Path, num_rows: int, grid: tuple[int, int], num_codes: int) -> Path:
    """Create the ids file ``[num_rows, h, w]`` under its partial name, for processes to fill in place
    (``np.load(path, mmap_mode="r+")``, each its own rows); :func:`finish_token_file` then publishes it."""
    path = partial_ids_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    ids = np.lib.format.open_memmap(path, mode="w+", dtype=token_dtype(num_codes), shape=(num_rows, *grid))
    ids.flush()
    del ids
    return path


def finish_token_file(out: str | Path, labels_N: torch.Tensor, num_codes: int, meta: dict[str, Any]) -> Path:
    """Publish the filled partial ids file (renamed atomically to ``NAME.npy``), then write the labels and the
    manifest; returns the manifest path."""
    partial = partial_ids_path(out)
    ids = np.load(partial, mmap_mode="r")
    shape = ids.shape
    del ids
    partial.replace(token_paths(out)[0])
    return _write_labels_and_manifest(out, shape, labels_N, num_codes, meta)


def _write_labels_and_manifest(
    out: str | Path, shape: tuple[int, ...], labels_N: torch.Tensor, num_codes: int, meta: dict[str, Any]
) -> Path:
    ids_path, labels_path, manifest_path = token_paths(out)
    labels = labels_N.cpu().numpy().astype(np.int64)
    atomic_write(labels_path, lambda tmp: np.save(open(tmp, "wb"), labels))  # noqa: SIM115
    manifest = {
        "format": FORMAT,
        "version": 1,
        "ids_file": ids_path.name,
        "labels_file": labels_path.name,
        "num_images": int(shape[0]),
        "grid": [int(shape[1]), int(shape[2])],
        "num_codes": int(num_codes),
        "dtype": np.dtype(token_dtype(num_codes)).name,
        **meta,
    }
    atomic_write(manifest_path, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=2)))
    return manifest_path


def read_token_file(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Memory-mapped ids [N, h, w], labels [N] and the manifest of a token file (.json or .npy path).

    Everything is checked against the manifest before anything is read: each problem (no manifest, missing ids or
    labels file, not a plain integer array, a shape, dtype or size that disagrees with the manifest, a truncated
    file) is one :class:`SemtokError` that names the file and what was expected. A folder is read as LlamaGen's
    code folders (:mod:`semtok.data.llamagen`): ids in memory, not memory-mapped.
    """
    if Path(path).is_dir():
        from semtok.data.llamagen import read_llamagen

        return read_llamagen(path)
    manifest_path = token_paths(path)[2]
    manifest = read_manifest(path)
    num_images = manifest["num_images"]
    ids_path = manifest_path.parent / manifest["ids_file"]
    labels_path = manifest_path.parent / manifest["labels_file"]
    grid = tuple(manifest["grid"])
    _check_npy(ids_path, "token ids", manifest_path, (num_images, *grid), np.dtype(manifest["dtype"]))
    _check_npy(labels_path, "token labels", manifest_path, (num_images,), None)
    ids = _load_npy(ids_path, "token ids", mmap=num_images > 0)  # an empty file cannot be memory-mapped
    labels = _load_npy(labels_path, "token labels", mmap=False)
    return ids, labels, manifest


_MANIFEST_KEYS: dict[str, type | tuple[type, ...]] = {
    "ids_file": str,
    "labels_file": str,
    "num_images": int,
    "grid": list,
    "num_codes": int,
    "dtype": str,
}


def read_json_file(path: Path, what: str) -> Any:
    """The parsed JSON of ``path`` (a ``what``: a manifest, a captions file); one SemtokError naming it when it is not
    valid JSON or cannot be read."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise SemtokError(f"{what} '{path}' is not valid JSON ({error.msg})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise SemtokError(f"{what} '{path}' could not be read ({error})") from None


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The checked manifest (``NAME.json``) of a token file given as ``NAME``, ``NAME.json`` or ``NAME.npy`` (a
    folder: LlamaGen's code folders, read whole by :func:`semtok.data.llamagen.read_llamagen`)."""
    if Path(path).is_dir():
        from semtok.data.llamagen import read_llamagen

        return read_llamagen(path)[2]
    manifest_path = token_paths(path)[2]
    if not manifest_path.exists():
        raise SemtokError(
            f"token file '{path}': no manifest '{manifest_path}' (expected NAME.json written by `semtok tokenize`)"
        )
    if not manifest_path.is_file():
        raise SemtokError(f"token manifest '{manifest_path}' is a folder, expected a JSON file")
    manifest = read_json_file(manifest_path, "token manifest")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SemtokError(f"'{manifest_path}' is not a {FORMAT} manifest")
    if manifest.get("version") != 1:
        raise SemtokError(
            f"token manifest '{manifest_path}': version {manifest.get('version')!r}, expected 1"
        )
    for key, kind in _MANIFEST_KEYS.items():
        value = manifest.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise SemtokError(
                f"token manifest '{manifest_path}': key '{key}' is {value!r}, expected a {kind.__name__}"
            )
    grid = manifest["grid"]
    if len(grid) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in grid):
        raise SemtokError(
            f"token manifest '{manifest_path}': grid {grid!r}, expected [h, w] of positive ints"
        )
    if manifest["num_images"] < 0 or manifest["num_codes"] < 1:
        raise SemtokError(
            f"token manifest '{manifest_path}': num_images {manifest['num_images']} and num_codes "
            f"{manifest['num_codes']}, expected >= 0 and >= 1"
        )
    try:
        dtype = np.dtype(manifest["dtype"])
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "ui":
        raise SemtokError(
            f"token manifest '{manifest_path}': dtype {manifest['dtype']!r}, expected an integer dtype (uint16, int32)"
        )
    return manifest


def _check_npy(
    path: Path, what: str, manifest_path: Path, shape: tuple[int, ...], dtype: np.dtype | None
) -> None:
    """Check a .npy file's header and size against what the manifest says (``dtype`` None: any integer dtype)."""
    if not path.exists():
        raise SemtokError(f"{what} file '{path}' (named by '{manifest_path}') does not exist")
    if not path.is_file():
        raise SemtokError(f"{what} file '{path}' is a folder, expected a .npy file")
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                found_shape, _, found_dtype = np.lib.format.read_array_header_1_0(handle)
            else:
                found_shape, _, found_dtype = np.lib.format.read_array_header_2_0(handle)
            offset = handle.tell()
    except (ValueError, OSError, SyntaxError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SemtokError(f"{what} file '{path}' is not a NumPy .npy array file ({detail})") from None
    if found_dtype.hasobject or found_dtype.kind not in "ui":
        raise SemtokError(f"{what} file '{path}' holds {found_dtype} values, expected a plain integer array")
    if dtype is not None and found_dtype != dtype:
        raise SemtokError(f"{what} file '{path}' holds {found_dtype} values, the manifest says {dtype.name}")
    if tuple(found_shape) != tuple(shape):
        raise SemtokError(
            f"{what} file '{path}' has shape {list(found_shape)}, the manifest '{manifest_path.name}' says "
            f"{list(shape)}"
        )
    expected = offset + int(np.prod(shape, dtype=np.int64)) * found_dtype.itemsize
    size = path.stat().st_size
    if size < expected:
        raise SemtokError(
            f"{what} file '{path}' is truncated: {size} bytes, expected {expected} for shape {list(shape)} "
            f"{found_dtype}"
        )


def _load_npy(path: Path, what: str, mmap: bool) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise SemtokError(f"{what} file '{path}' could not be read ({str(error).splitlines()[0]})") from None


class TokenDataset(torch.utils.data.Dataset):
    """Items ``(ids [h*w] int64 in raster order, label int)`` of a token file, read from the memory map.

    ``null_label``: what an unlabelled item (label -1) becomes (the AR model's null class).
    """

    def __init__(self, path: str | Path, null_label: int = -1) -> None:
        self.ids, self.labels, self.manifest = read_token_file(path)
        self.path = Path(path)
        self.null_label = null_label
        if self.ids.ndim != 3 or len(self.labels) != self.ids.shape[0]:
            raise SemtokError(
                f"token file '{path}': ids {self.ids.shape} and labels {self.labels.shape} do not match"
            )

    def __len__(self) -> int:
        return self.ids.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        ids = torch.from_numpy(self.ids[index].astype(np.int64).reshape(-1))
        label = int(self.labels[index])
        return ids, self.null_label if label < 0 else label
