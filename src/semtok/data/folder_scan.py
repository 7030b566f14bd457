"""Scanning image folders: which files are images, their labels, and a deterministic train/val split.

Layout rules (``scan_image_folder``):
- *labelled*: the root has subfolders that contain images (at any depth). Each such subfolder is a class; class
  names are the sorted folder names, labels their index. Image files directly in the root are then ignored (with
  a warning), as are subfolders without images.
- *unlabeled*: otherwise. Every image under the root, at any depth, is an item with label -1.
- ``labelled=True/False`` forces either reading (``build_dataset(labels="folders" / "none")``, the CLI's
  ``--labels folders|none``, the config's ``data.labels``).
Files are found recursively (symlinks followed, loops cut, hidden files and folders skipped) and kept in sorted
order of their relative path, so the item order is the same on every machine. An image file is one whose
extension PIL registers for opening (``IMAGE_EXTENSIONS``, case-insensitive; video and stub-only formats left out).

Unreadable files -- the choice made here: verifying every file fully at construction (``Image.verify`` or a
decode) is too slow for a million files, so at construction every file's header is read (``Image.open`` parses
the header only, in a few threads); a file that fails (not an image, garbage, unsupported) is left out, warned
about by name and listed in ``skipped_files`` -- the count the trainer reports up front. ``check_headers=False``
skips this (then every failure is found at load time, see :mod:`semtok.data.folder`). The check's results of a
large folder are cached (:mod:`semtok.data.scan_cache`): a folder whose listing, sizes and modification times have
not changed is not checked again.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from semtok.data.scan_cache import cached_header_errors
from semtok.errors import SemtokError

__all__ = [
    "IMAGE_EXTENSIONS",
    "FolderScan",
    "SkippedFileWarning",
    "TopLevelImagesWarning",
    "concat_scans",
    "find_class_names",
    "list_image_files",
    "relative_name",
    "scan_image_folder",
    "split_samples",
    "warn_skipped",
]


class SkippedFileWarning(UserWarning):
    """A file under a data folder that could not be read and was skipped."""


class TopLevelImagesWarning(UserWarning):
    """Image files at the top level of a folder read as labelled (class subfolders) were ignored."""


def _image_extensions() -> frozenset[str]:
    Image.init()
    # formats PIL can only identify (stubs) or that are videos: not images for a data set
    excluded = {"MPEG", "BUFR", "GRIB", "HDF5", "WMF"}
    openable = set(Image.OPEN) | {"MPO"}  # MPO (multi-picture JPEG) is opened by the JPEG plugin
    return frozenset(
        ext.lower()
        for ext, fmt in Image.registered_extensions().items()
        if fmt in openable and fmt not in excluded
    )


IMAGE_EXTENSIONS: frozenset[str] = _image_extensions()


_MAX_NAMED_WARNINGS = 20


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _has_image_extension(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _walk_images(directory: str | os.PathLike, stop_at_first: bool = False) -> list[str]:
    """Image files under ``directory`` as POSIX paths relative to it, unsorted (recursive, symlinks followed, loops
    cut, hidden entries and unreadable folders skipped). One ``os.scandir`` per folder and plain strings, no
    ``Path`` per file: this is the part of a scan that grows with the data set."""
    found: list[str] = []
    visited: set[str] = set()
    pending = [("", os.fspath(directory))]
    while pending:
        prefix, path = pending.pop()
        real = os.path.realpath(path)
        if real in visited:
            continue
        visited.add(real)
        try:
            with os.scandir(path) as entries:
                listed = list(entries)
        except OSError:
            continue
        folders = []
        for entry in listed:
            name = entry.name
            if _is_hidden(name):
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir:
                folders.append(name)
            elif _has_image_extension(name):
                found.append(prefix + name)
                if stop_at_first:
                    return found
        pending.extend(
            (f"{prefix}{name}/", os.path.join(path, name)) for name in sorted(folders, reverse=True)
        )
    return found


def list_image_files(directory: str | os.PathLike) -> list[str]:
    """All image files under ``directory``, recursively, sorted by their path relative to it."""
    base = os.fspath(directory)
    return [os.path.join(base, relative) for relative in sorted(_walk_images(base))]


def relative_name(root: str | os.PathLike, path: str) -> str:
    """``path`` relative to ``root`` as a POSIX string (a prefix cut when ``path`` lies under ``root``, as every
    scanned path does; ``os.path.relpath`` otherwise)."""
    prefix = os.path.join(os.fspath(root), "")
    if path.startswith(prefix):
        relative = path[len(prefix) :]
        return relative if os.sep == "/" else relative.replace(os.sep, "/")
    return Path(os.path.relpath(path, root)).as_posix()


def _subfolders(root: Path) -> list[Path]:
    with os.scandir(root) as entries:
        names = [entry.name for entry in entries if not _is_hidden(entry.name) and _entry_is_dir(entry)]
    return [root / name for name in sorted(names)]


def _entry_is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _top_level_images(root: Path) -> int:
    with os.scandir(root) as entries:
        return sum(
            1
            for entry in entries
            if not _is_hidden(entry.name) and _has_image_extension(entry.name) and not _entry_is_dir(entry)
        )


def find_class_names(root: str | os.PathLike) -> list[str]:
    """Sorted names of the subfolders of ``root`` that contain at least one image (cheap: stops at the first)."""
    return [sub.name for sub in _subfolders(Path(root)) if _walk_images(sub, stop_at_first=True)]


def _header_error(path: str) -> str | None:
    try:
        with Image.open(path) as image:
            image.size  # noqa: B018 - the header has been parsed by open
    except Exception as error:  # any failure means: not a readable image
        return f"{type(error).__name__}: {error}"
    return None


def _header_errors(paths: Sequence[str], num_threads: int) -> list[str | None]:
    if len(paths) > 64 and num_threads > 1:
        with ThreadPoolExecutor(max_workers=num_threads) as pool:
            return list(pool.map(_header_error, paths, chunksize=64))
    return [_header_error(path) for path in paths]


def warn_skipped(problems: Sequence[tuple[str, str]], when: str) -> None:
    for path, reason in problems[:_MAX_NAMED_WARNINGS]:
        warnings.warn(f"skipped unreadable image {path} ({when}): {reason}", SkippedFileWarning, stacklevel=3)
    if len(problems) > _MAX_NAMED_WARNINGS:
        warnings.warn(
            f"skipped {len(problems) - _MAX_NAMED_WARNINGS} more unreadable images ({when}); "
            "see the data set's skipped_files",
            SkippedFileWarning,
            stacklevel=3,
        )


@dataclass
class FolderScan:
    """What ``scan_image_folder`` found: ``samples`` are (absolute path, label) in sorted order."""

    root: Path
    samples: list[tuple[str, int]]
    class_names: list[str]
    labelled: bool
    skipped_files: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.labelled else 0


def scan_image_folder(
    root: str | os.PathLike,
    labelled: bool | None = None,
    class_names: Sequence[str] | None = None,
    check_headers: bool = True,
    num_threads: int = 1,
) -> FolderScan:
    """Find the images under ``root`` and their labels (see the module docstring for the rules).

    ``class_names`` fixes the class list (for a val folder, pass the train folder's): every class folder found
    must be in it, and labels index into it. Raises ``SemtokError`` for a missing folder or one without images.
    ``num_threads`` > 1 checks the headers in that many threads: that helps on cold or network storage (the wait is
    I/O) and hurts on a warm page cache, where ``Image.open`` is bound by the GIL (100,000 files on 2 cores: 8
    threads 2.6x slower than one; ``benchmarks/bench_folder_scan.py``).
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise SemtokError(f"data folder {root}: no such directory")
    if not root.is_dir():
        raise SemtokError(f"data folder {root}: not a directory")
    root = root.resolve()

    subfolders = _subfolders(root)
    class_files: dict[str, list[str]] = {}
    if labelled is None or labelled:
        for sub in subfolders:
            files = list_image_files(sub)
            if files:
                class_files[sub.name] = files
        if labelled is None:
            labelled = bool(class_files)
        elif not class_files:
            raise SemtokError(
                f"data folder {root}: labels 'folders' (--labels folders) needs class subfolders with images, "
                "but none of its subfolders holds any (--labels none reads every image unlabelled)"
            )

    samples: list[tuple[str, int]] = []
    if labelled:
        if class_names is None:
            names = sorted(class_files)
        else:
            names = list(class_names)
            unknown = sorted(set(class_files) - set(names))
            if unknown:
                raise SemtokError(
                    f"data folder {root}: class folder(s) {', '.join(unknown)} not among the "
                    f"{len(names)} training classes"
                )
        index_of = {name: i for i, name in enumerate(names)}
        for name in sorted(class_files):
            samples.extend((path, index_of[name]) for path in class_files[name])
        top_level = _top_level_images(root)
        if top_level:
            warnings.warn(
                f"data folder {root}: ignored {top_level} image file(s) at its top level: it has "
                f"{len(class_files)} class subfolder(s), read as labelled; --labels none (config: "
                "data.labels=none) reads every image under it, unlabelled",
                TopLevelImagesWarning,
                stacklevel=2,
            )
        empty = [sub.name for sub in subfolders if sub.name not in class_files]
        if empty:
            warnings.warn(
                f"data folder {root}: ignored subfolder(s) without images: {', '.join(empty[:10])}",
                stacklevel=2,
            )
    else:
        names = []
        samples = [(path, -1) for path in list_image_files(root)]

    if not samples:
        extensions = ", ".join(sorted(IMAGE_EXTENSIONS & {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif"}))
        raise SemtokError(
            f"data folder {root}: no image files found (looked for {extensions}, ... recursively)"
        )

    skipped: list[str] = []
    if check_headers:
        paths = [path for path, _ in samples]
        errors = cached_header_errors(root, paths, lambda chosen: _header_errors(chosen, num_threads))
        problems = [(path, error) for path, error in zip(paths, errors) if error is not None]
        if problems:
            warn_skipped(problems, "header check")
            skipped = [path for path, _ in problems]
            samples = [sample for sample, error in zip(samples, errors) if error is None]
        if not samples:
            raise SemtokError(f"data folder {root}: none of its {len(paths)} image files could be read")
    return FolderScan(
        root=root, samples=samples, class_names=names, labelled=bool(labelled), skipped_files=skipped
    )


def _split_key(seed: int, root: Path, path: str) -> bytes:
    relative = relative_name(root, path)
    return hashlib.sha1(f"{seed}/{relative}".encode()).digest()


def split_samples(scan: FolderScan, val_fraction: float = 0.1, seed: int = 0) -> tuple[list[int], list[int]]:
    """A deterministic train/val split of ``scan.samples``: (train indices, val indices), each in sample order.

    Per class (all samples form one group when unlabeled), files are ranked by the SHA-1 of
    ``f"{seed}/{relative path}"`` and the first ``round(val_fraction * n)`` go to val, keeping at least one in
    train; if that gives no val file at all, one file of the largest group goes to val. The ranking depends only
    on each file's own path, so adding files moves few others between the splits. Needs at least 2 images.
    """
    if not 0.0 < val_fraction < 1.0:
        raise SemtokError(f"val_fraction: expected a number in (0, 1), got {val_fraction!r}")
    if len(scan.samples) < 2:
        raise SemtokError(f"data folder {scan.root}: needs at least 2 readable images for a train/val split")
    groups: dict[int, list[int]] = {}
    for i, (_, label) in enumerate(scan.samples):
        groups.setdefault(label, []).append(i)
    ranked = {
        label: sorted(members, key=lambda i: _split_key(seed, scan.root, scan.samples[i][0]))
        for label, members in groups.items()
    }
    counts = {
        label: min(len(m) - 1, int(np.floor(val_fraction * len(m) + 0.5))) for label, m in ranked.items()
    }
    if sum(counts.values()) == 0:
        largest = max(ranked, key=lambda label: (len(ranked[label]), -label))
        counts[largest] = 1
    val = sorted(i for label, members in ranked.items() for i in members[: counts[label]])
    val_set = set(val)
    train = [i for i in range(len(scan.samples)) if i not in val_set]
    return train, val


def concat_scans(root: Path, scans: Sequence[FolderScan]) -> FolderScan:
    """One scan holding the samples of ``scans`` in order (e.g. a train folder's, then its val folder's, read with
    the train class list): ``root`` is the folder above them (relative paths are taken from it); class list and
    labelling from the first scan."""
    first = scans[0]
    return FolderScan(
        root=Path(root).expanduser().resolve(),
        samples=[sample for scan in scans for sample in scan.samples],
        class_names=list(first.class_names),
        labelled=first.labelled,
        skipped_files=[path for scan in scans for path in scan.skipped_files],
    )
