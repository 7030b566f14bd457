"""FID between any two sources: an image folder, an ADM ``.npz`` image batch, or an ``.npz`` of statistics.

A source spec is a path:

- a folder: every image file under it (recursively; ``.png .jpg .jpeg .bmp .webp .tif .tiff``), in sorted
  relative-path order, read with PIL as RGB uint8; all must share one size (else a one-line error naming the
  first file of another size). No resize other than the extractor's own TF-1.x bilinear resize to 299 px, as
  torch-fidelity does with a folder.
- an ``.npz`` holding ``mu`` and ``sigma`` (``semtok stats`` output, ADM's reference batch): those statistics
  are used as they are; a file that also holds images (``arr_0``, as ADM's ``VIRTUAL_imagenet256_labeled.npz``)
  still uses the statistics, and the description says so.
- an ``.npz`` image batch (``arr_0`` uint8 [N, H, W, 3]): read in chunks, features computed.

Features come from :class:`~semtok.metrics.inception.InceptionFeatures` in batches (tqdm bar with ``progress``),
are kept as float32 [N, 2048] and reduced with :func:`~semtok.metrics.fid.feature_stats` (float64, N - 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from semtok.errors import SemtokError
from semtok.metrics import image_batches
from semtok.metrics.fid import feature_stats, frechet_distance
from semtok.metrics.inception import InceptionFeatures

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


@dataclass
class SourceStats:
    """Statistics of one source: pool3 ``mu`` [2048] / ``sigma`` [2048, 2048] float64, the sFID pair
    (``mu_s`` [2023], ``sigma_s`` [2023, 2023]) when computed or stored, and what the source was."""

    mu: np.ndarray
    sigma: np.ndarray
    description: dict[str, Any]
    spatial: tuple[np.ndarray, np.ndarray] | None = field(default=None)


def folder_images(folder: str | Path) -> tuple[list[Path], tuple[int, int]]:
    """(image files under ``folder`` in sorted relative-path order, their common (width, height)).

    Only headers are read. No images, or one of another size -> SemtokError naming the folder / that file."""
    from PIL import Image

    folder = Path(folder).expanduser()
    files = sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    if not files:
        raise SemtokError(f"FID source '{folder}': no image files ({' '.join(IMAGE_SUFFIXES)}) under it")
    size = None
    for path in files:
        try:
            with Image.open(path) as image:
                this = image.size
        except Exception as error:
            raise SemtokError(f"FID source '{path}': not a readable image ({error})") from error
        if size is None:
            size, first = this, path
        elif this != size:
            raise SemtokError(
                f"FID source '{folder}': '{path.relative_to(folder)}' is {this[0]}x{this[1]}, expected every image "
                f"at {size[0]}x{size[1]} like '{first.relative_to(folder)}' (resize them to one size first)"
            )
    assert size is not None
    return files, size


def _folder_batches(files: list[Path], batch_size: int) -> Iterator[torch.Tensor]:
    """uint8 [B, 3, H, W] batches of the files, read with PIL ``convert("RGB")`` (as torch-fidelity)."""
    from PIL import Image

    for start in range(0, len(files), batch_size):
        arrays = []
        for path in files[start : start + batch_size]:
            with Image.open(path) as image:
                arrays.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
        yield torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _npz_batches(path: Path, batch_size: int) -> Iterator[torch.Tensor]:
    for chunk in image_batches.iter_image_batch(path, batch_size):
        yield torch.from_numpy(chunk.copy()).permute(0, 3, 1, 2).contiguous()


def _features(
    extractor: InceptionFeatures, batches: Iterator[torch.Tensor], total: int, spatial: bool, progress: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    if spatial:
        from semtok.metrics.inception_spatial import extract_pool3_and_spatial

        return extract_pool3_and_spatial(extractor, batches, total=total, progress=progress)
    features = extractor.extract(_counted(batches, total, progress), progress=False)
    return features.astype(np.float32), None


def _counted(batches: Iterator[torch.Tensor], total: int, progress: bool) -> Iterator[torch.Tensor]:
    from tqdm.auto import tqdm

    with tqdm(total=total, desc="inception features", unit="img", disable=not progress, leave=False) as bar:
        for batch in batches:
            yield batch
            bar.update(batch.shape[0])


def check_source(spec: str | Path, what: str = "FID source") -> str:
    """What a source spec is: "folder", "statistics" (an npz with mu/sigma) or "image_batch" (an npz with
    arr_0), from the file system and the npz's member names only; anything else -> SemtokError naming it."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return "folder"
    if not path.exists():
        raise SemtokError(f"{what} '{path}': does not exist (expected an image folder or an .npz)")
    if path.suffix.lower() != ".npz":
        raise SemtokError(f"{what} '{path}': expected an image folder or an .npz (image batch or statistics)")
    keys = image_batches.npz_keys(path, what)
    if all(key in keys for key in image_batches.STATS_KEYS):
        return "statistics"
    if "arr_0" in keys:
        return "image_batch"
    raise SemtokError(
        f"{what} '{path}': has neither 'mu'/'sigma' statistics nor an 'arr_0' image batch "
        f"(found {', '.join(keys) or 'no arrays'})"
    )


def source_statistics(
    spec: str | Path,
    extractor: InceptionFeatures,
    batch_size: int = 50,
    progress: bool = False,
    spatial: bool = False,
) -> SourceStats:
    """:class:`SourceStats` of a folder, an ``.npz`` image batch or an ``.npz`` of statistics (module docstring).

    Args:
        spec: the path. A missing path, another file type, an npz with neither ``mu``/``sigma`` nor ``arr_0``
            -> SemtokError (one line naming it).
        extractor: computes the features of images (unused for a statistics file).
        batch_size: images read and run per batch.
        progress: tqdm bar while extracting.
        spatial: also the sFID statistics (computed for images; for a statistics file, read when it holds
            ``mu_s`` / ``sigma_s``, else an error).
    The description holds ``kind`` ("folder", "image_batch", "statistics"), ``path``, ``num_images`` (None when
    a statistics file does not record it), ``image_size`` ([H, W] or None) and ``extractor_id``.
    """
    if batch_size < 1:
        raise SemtokError(f"FID: batch_size must be >= 1, got {batch_size}")
    path = Path(spec).expanduser()
    kind = check_source(path)
    if kind == "folder":
        files, (width, height) = folder_images(path)
        batches, total = _folder_batches(files, batch_size), len(files)
        description: dict[str, Any] = {"kind": "folder", "image_size": [height, width]}
    elif kind == "statistics":
        return _stored_statistics(path, image_batches.npz_keys(path, "FID source"), spatial)
    else:
        total, height, width, _ = image_batches.image_batch_shape(path)
        batches = _npz_batches(path, batch_size)
        description = {"kind": "image_batch", "image_size": [height, width]}
    if total < 2:
        raise SemtokError(f"FID source '{path}': {total} image(s), expected at least 2")
    features, spatial_features = _features(extractor, batches, total, spatial, progress)
    description.update(path=str(path), num_images=int(features.shape[0]), extractor_id=extractor.extractor_id)
    mu, sigma = feature_stats(features)
    pair = feature_stats(spatial_features) if spatial_features is not None else None
    return SourceStats(mu, sigma, description, pair)


def _stored_statistics(path: Path, keys: list[str], spatial: bool) -> SourceStats:
    mu, sigma = image_batches.read_stats(path)
    meta = image_batches.read_metadata(path) or {}
    description: dict[str, Any] = {
        "kind": "statistics",
        "path": str(path),
        "num_images": meta.get("num_images"),
        "image_size": meta.get("image_size"),
        "extractor_id": meta.get("extractor_id", "unknown (no .json beside the file)"),
    }
    if "arr_0" in keys:
        description["note"] = "holds images (arr_0) and statistics (mu/sigma): used the statistics"
    pair = None
    if spatial:
        if not all(key in keys for key in image_batches.SPATIAL_KEYS):
            raise SemtokError(f"FID source '{path}': has no 'mu_s'/'sigma_s' arrays, needed for sFID")
        pair = image_batches.read_stats(path, spatial=True)
    return SourceStats(mu, sigma, description, pair)


def source_stats(
    spec: str | Path, extractor: InceptionFeatures, batch_size: int = 50, progress: bool = False
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """(mu [2048], sigma [2048, 2048] float64, description) of a source: :func:`source_statistics` without sFID."""
    stats = source_statistics(spec, extractor, batch_size, progress)
    return stats.mu, stats.sigma, stats.description


def fid_between(
    a: str | Path,
    b: str | Path,
    extractor: InceptionFeatures,
    batch_size: int = 50,
    progress: bool = False,
    sfid: bool = False,
) -> dict[str, Any]:
    """``{"fid": float, "sfid": float (with sfid), "a": description, "b": description}`` of two sources, plus
    ``"warning"`` when both sides name their extractor and the names differ (their FID is not comparable)."""
    first = source_statistics(a, extractor, batch_size, progress, spatial=sfid)
    second = source_statistics(b, extractor, batch_size, progress, spatial=sfid)
    result: dict[str, Any] = {"fid": frechet_distance(first.mu, first.sigma, second.mu, second.sigma)}
    if sfid:
        assert first.spatial is not None and second.spatial is not None
        result["sfid"] = frechet_distance(*first.spatial, *second.spatial)
    result.update(a=first.description, b=second.description)
    ids = {first.description["extractor_id"], second.description["extractor_id"]}
    if len(ids) > 1 and not any(str(i).startswith("unknown") for i in ids):
        result["warning"] = "the two sides were computed with different extractors: " + " vs ".join(
            sorted(ids)
        )
    return result
