"""The ADM (guided-diffusion) ``.npz`` formats: sample / reference image batches and FID statistics.

Image batch (what ADM's ``evaluations/evaluator.py`` reads as ``--sample_batch`` / ``--ref_batch``):
    ``arr_0`` uint8 [N, H, W, 3] (RGB, channels last) and, for class-conditional samples, ``arr_1`` int64 [N]
    (the labels). :func:`write_sample_batch` writes it, :func:`read_image_batch` reads it whole and
    :func:`iter_image_batch` reads ``arr_0`` in chunks straight from the zip member (a 50,000-image 256 px batch is
    9.8 GB: it need not fit in memory).
Statistics:
    ``mu`` float64 [D] and ``sigma`` float64 [D, D] (pool3: D = 2048), optionally ``mu_s`` / ``sigma_s`` (the
    sFID spatial features, D = 2023). ADM's reference batch ``VIRTUAL_imagenet256_labeled.npz`` holds ``arr_0``
    (the reference images), ``mu``, ``sigma``, ``mu_s`` and ``sigma_s``. :func:`write_stats` writes them plus a
    ``.json`` provenance file beside them; :func:`read_stats` reads them.

Every read uses ``allow_pickle=False``; every write goes to a temporary file renamed into place (atomic). A
missing, truncated or non-npz file is a one-line :class:`~semtok.errors.SemtokError` naming the file.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from semtok.errors import SemtokError

STATS_KEYS = ("mu", "sigma")
SPATIAL_KEYS = ("mu_s", "sigma_s")


def _npz_path(path: str | Path, what: str) -> Path:
    path = Path(path).expanduser()
    if path.suffix.lower() != ".npz":
        raise SemtokError(f"{what} '{path}': expected a file name ending in .npz")
    return path


def _atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """``np.savez`` of ``arrays`` to ``path`` through a temporary file in the same folder, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _open_npz(path: Path, what: str) -> Any:
    """``np.load(path, allow_pickle=False)`` of an ``.npz``; a missing / truncated / non-npz file -> one line."""
    if not path.is_file():
        raise SemtokError(f"{what} '{path}': file not found (expected an .npz)")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as error:  # BadZipFile, ValueError (pickled / not npy), OSError, EOFError
        raise SemtokError(
            f"{what} '{path}': not a readable .npz file ({type(error).__name__}: {error})"
        ) from error
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise SemtokError(f"{what} '{path}': a single .npy array, expected an .npz archive")
    return data


def npz_keys(path: str | Path, what: str = "npz") -> list[str]:
    """Array names in an ``.npz`` (nothing loaded). Missing / unreadable file -> SemtokError naming it."""
    path = Path(path).expanduser()
    with _open_npz(path, what) as data:
        return list(data.files)


def write_sample_batch(path: str | Path, images: np.ndarray, labels: np.ndarray | None = None) -> Path:
    """Write an ADM sample batch: ``arr_0`` uint8 [N, H, W, 3] and, if given, ``arr_1`` int64 [N] labels.

    Args:
        path: the ``.npz`` file to write (atomically; parent folders are created).
        images: uint8 [N, H, W, 3] RGB, channels last (``semtok.metrics.to_uint8(x).permute(0, 2, 3, 1)`` of
            [-1, 1] float images [N, 3, H, W]). Other dtypes are refused, not cast.
        labels: None, or integer class labels [N] (stored as int64).
    Returns the path written.
    """
    path = _npz_path(path, "sample batch")
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise SemtokError(
            f"sample batch '{path}': expected uint8 images [N, H, W, 3], got {images.dtype} {images.shape}"
        )
    arrays = {"arr_0": np.ascontiguousarray(images)}
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
            raise SemtokError(
                f"sample batch '{path}': expected integer labels [{images.shape[0]}], "
                f"got {labels.dtype} {labels.shape}"
            )
        arrays["arr_1"] = labels.astype(np.int64)
    _atomic_savez(path, arrays)
    return path


def _check_images(array: np.ndarray | tuple, dtype: Any, path: Path) -> None:
    shape = array if isinstance(array, tuple) else array.shape
    if np.dtype(dtype) != np.uint8 or len(shape) != 4 or shape[-1] != 3:
        raise SemtokError(
            f"image batch '{path}': expected 'arr_0' uint8 [N, H, W, 3], got {np.dtype(dtype)} {tuple(shape)}"
        )


def read_image_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(images uint8 [N, H, W, 3], labels int64 [N] or None) of an ADM image batch (``arr_0``, ``arr_1``).

    The whole of ``arr_0`` is loaded; use :func:`iter_image_batch` for batches that do not fit in memory.
    """
    path = Path(path).expanduser()
    with _open_npz(path, "image batch") as data:
        if "arr_0" not in data.files:
            raise SemtokError(
                f"image batch '{path}': has no 'arr_0' array (expected uint8 images [N, H, W, 3]; "
                f"found {', '.join(data.files) or 'no arrays'})"
            )
        try:
            images = data["arr_0"]
            labels = data["arr_1"] if "arr_1" in data.files else None
        except Exception as error:
            raise SemtokError(f"image batch '{path}': truncated or unreadable array ({error})") from error
    _check_images(images, images.dtype, path)
    if labels is not None:
        if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
            raise SemtokError(
                f"image batch '{path}': expected 'arr_1' integer labels [{images.shape[0]}], "
                f"got {labels.dtype} {labels.shape}"
            )
        labels = labels.astype(np.int64)
    return images, labels


def image_batch_shape(path: str | Path) -> tuple[int, int, int, int]:
    """(N, H, W, 3) of ``arr_0`` in an ADM image batch, from the .npy header only (checked as uint8 NHW3)."""
    path = Path(path).expanduser()
    with _open_member(path) as (shape, dtype, _):
        return shape


class _open_member:
    """Context manager: (shape, dtype, file object positioned at the data) of ``arr_0.npy`` inside the zip."""

    def __init__(self, path: Path):
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._member: Any = None

    def __enter__(self) -> tuple[tuple[int, int, int, int], np.dtype, Any]:
        path = self.path
        if not path.is_file():
            raise SemtokError(f"image batch '{path}': file not found (expected an .npz)")
        try:
            self._zip = zipfile.ZipFile(path)
            names = self._zip.namelist()
            if "arr_0.npy" not in names:
                found = ", ".join(name.removesuffix(".npy") for name in names) or "no arrays"
                raise SemtokError(
                    f"image batch '{path}': has no 'arr_0' array (expected uint8 images [N, H, W, 3]; "
                    f"found {found})"
                )
            self._member = self._zip.open("arr_0.npy")
            version = np.lib.format.read_magic(self._member)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(self._member)
        except SemtokError:
            self.__exit__()
            raise
        except Exception as error:
            self.__exit__()
            raise SemtokError(
                f"image batch '{path}': not a readable .npz file ({type(error).__name__}: {error})"
            ) from error
        try:
            _check_images(tuple(shape), dtype, path)
            if fortran:
                raise SemtokError(f"image batch '{path}': 'arr_0' is Fortran-ordered; expected C order")
        except SemtokError:
            self.__exit__()
            raise
        return tuple(int(s) for s in shape), np.dtype(dtype), self._member  # type: ignore[return-value]

    def __exit__(self, *exc: object) -> None:
        if self._member is not None:
            self._member.close()
        if self._zip is not None:
            self._zip.close()
        self._member = self._zip = None


def iter_image_batch(path: str | Path, batch_size: int = 64) -> Iterator[np.ndarray]:
    """Chunks uint8 [<= batch_size, H, W, 3] of ``arr_0`` in order, read from the zip member without loading
    the whole array (ADM's evaluator does the same). A file that ends early -> SemtokError naming it."""
    if batch_size < 1:
        raise SemtokError(f"image batch: batch_size must be >= 1, got {batch_size}")
    path = Path(path).expanduser()
    with _open_member(path) as (shape, _, member):
        count, height, width, _ = shape
        per_image = height * width * 3
        for start in range(0, count, batch_size):
            n = min(batch_size, count - start)
            try:
                raw = member.read(n * per_image)
            except Exception as error:
                raise SemtokError(f"image batch '{path}': truncated or corrupt ({error})") from error
            if len(raw) != n * per_image:
                raise SemtokError(
                    f"image batch '{path}': truncated: 'arr_0' ends after {start + len(raw) // per_image} "
                    f"of {count} images"
                )
            yield np.frombuffer(raw, dtype=np.uint8).reshape(n, height, width, 3)


def _stats_pair(data: Any, keys: tuple[str, str], path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        mu, sigma = np.asarray(data[keys[0]], np.float64), np.asarray(data[keys[1]], np.float64)
    except Exception as error:
        raise SemtokError(
            f"reference '{path}': truncated or unreadable '{keys[0]}'/'{keys[1]}' ({error})"
        ) from error
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise SemtokError(
            f"reference '{path}': expected '{keys[0]}' [D] and '{keys[1]}' [D, D], got {mu.shape}, {sigma.shape}"
        )
    return mu, sigma


def has_stats(path: str | Path, spatial: bool = False) -> bool:
    """Whether an ``.npz`` holds ``mu`` and ``sigma`` (with ``spatial``: ``mu_s`` and ``sigma_s``)."""
    keys = SPATIAL_KEYS if spatial else STATS_KEYS
    return all(key in npz_keys(path, "reference") for key in keys)


def read_stats(path: str | Path, spatial: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(mu [D], sigma [D, D]) float64 from an ``.npz`` holding ``mu`` and ``sigma`` (ours or ADM's reference batch).

    With ``spatial``, the sFID statistics ``mu_s`` / ``sigma_s`` (D = 2023) instead. A file without them ->
    ``reference FILE: has no 'mu'/'sigma' arrays (expected ...)``.
    """
    path = Path(path).expanduser()
    keys = SPATIAL_KEYS if spatial else STATS_KEYS
    with _open_npz(path, "reference") as data:
        if not all(key in data.files for key in keys):
            found = ", ".join(data.files) or "no arrays"
            raise SemtokError(
                f"reference '{path}': has no '{keys[0]}'/'{keys[1]}' arrays (expected float64 {keys[0]} [D] and "
                f"{keys[1]} [D, D], as `semtok stats` or ADM's reference batch write them; found {found})"
            )
        return _stats_pair(data, keys, path)


def write_stats(
    path: str | Path,
    mu: np.ndarray,
    sigma: np.ndarray,
    metadata: dict[str, Any],
    spatial: tuple[np.ndarray, np.ndarray] | None = None,
) -> Path:
    """Write ``mu`` [D] / ``sigma`` [D, D] (float64; plus ``mu_s`` / ``sigma_s`` from ``spatial``) to ``path``
    (``.npz``, atomically) and ``metadata`` (extractor id, number of images, source, ...) to the ``.json`` of
    the same stem beside it. Returns the ``.npz`` path."""
    path = _npz_path(path, "statistics")
    mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise SemtokError(
            f"statistics '{path}': expected mu [D] and sigma [D, D], got {mu.shape}, {sigma.shape}"
        )
    arrays = {"mu": mu, "sigma": sigma}
    if spatial is not None:
        arrays["mu_s"], arrays["sigma_s"] = (np.asarray(a, np.float64) for a in spatial)
    _atomic_savez(path, arrays)
    meta = path.with_suffix(".json")
    tmp = meta.with_name(f".{meta.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(metadata, indent=2, sort_keys=True, default=str))
    os.replace(tmp, meta)
    return path


def read_metadata(path: str | Path) -> dict[str, Any] | None:
    """The provenance ``.json`` beside a statistics ``.npz`` (None when absent or not a JSON object)."""
    meta = Path(path).expanduser().with_suffix(".json")
    try:
        data = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None
