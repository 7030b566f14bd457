"""A cache of the folder scan's header check, so a large image folder is checked once, not at every verb.

Only for scans of at least ``CACHE_MIN_FILES`` files (smaller ones check faster than they would hash). The cache
file ``$SEMTOK_CACHE/scans/<sha1 of the folder>.json`` (else ``~/.cache/semtok/scans/``; ``SEMTOK_SCAN_CACHE=0``
turns it off) holds a fingerprint of the listing -- the SHA-1 of every file's relative path, size and modification
time (ns), in scan order -- and the files that failed the check with their reasons. A scan whose fingerprint
matches reuses those results; any added, removed, renamed, resized or touched file changes the fingerprint, and the
whole folder is checked again. Plain JSON (nothing executable is read back); written atomically.
Cost of a hit: one ``os.stat`` and one hash update per file (100,000 files: see ``benchmarks/bench_folder_scan.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from semtok.hub.files import atomic_write

__all__ = ["CACHE_MIN_FILES", "cached_header_errors", "scan_cache_dir"]

CACHE_MIN_FILES = 10_000
_VERSION = 1


def scan_cache_dir() -> Path:
    """``$SEMTOK_CACHE/scans`` if the variable is set, else ``~/.cache/semtok/scans``."""
    root = os.environ.get("SEMTOK_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "semtok") / "scans"


def _fingerprint(prefix_length: int, paths: Sequence[str]) -> str | None:
    """SHA-1 of (relative path, size, mtime ns) of every file in order; None when a file cannot be stat'ed."""
    digest = hashlib.sha1()
    stat = os.stat
    try:
        for path in paths:
            info = stat(path)
            digest.update(f"{path[prefix_length:]}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    except OSError:
        return None
    return digest.hexdigest()


def cached_header_errors(
    root: Path, paths: Sequence[str], check: Callable[[Sequence[str]], list[str | None]]
) -> list[str | None]:
    """``check(paths)`` (one error string or None per path, every path under ``root``), from the cache when the
    folder's listing has not changed since it was last checked; the result is cached for the next scan."""
    if len(paths) < CACHE_MIN_FILES or os.environ.get("SEMTOK_SCAN_CACHE", "1") == "0":
        return check(paths)
    root_text = str(root)
    prefix_length = len(os.path.join(root_text, ""))
    fingerprint = _fingerprint(prefix_length, paths)
    cache = scan_cache_dir() / f"{hashlib.sha1(root_text.encode()).hexdigest()}.json"
    if fingerprint is not None and cache.is_file():
        try:
            saved = json.loads(cache.read_text())
        except (OSError, ValueError):
            saved = None
        if (
            isinstance(saved, dict)
            and saved.get("version") == _VERSION
            and saved.get("root") == root_text
            and saved.get("fingerprint") == fingerprint
            and saved.get("files") == len(paths)
        ):
            failed = {str(name): str(reason) for name, reason in saved.get("failed", [])}
            return [failed.get(path[prefix_length:]) for path in paths]
    errors = check(paths)
    if fingerprint is not None:
        record = {
            "version": _VERSION,
            "root": root_text,
            "files": len(paths),
            "fingerprint": fingerprint,
            "failed": [
                [path[prefix_length:], error] for path, error in zip(paths, errors) if error is not None
            ],
        }
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(cache, lambda tmp: Path(tmp).write_text(json.dumps(record)))
        except OSError:  # a read-only home: the scan still works, uncached
            pass
    return errors
