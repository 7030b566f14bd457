"""Captions carried beside a token file: ``NAME.captions.json``, one list of captions per token row.

Format: ``{"format": "semtok-captions", "version": 1, "num_rows": N, "captions": [[str, ...], ...]}`` with ``N``
the token file's ``num_images`` (rows in the same order as the ids: with views, view-major, every view repeating its
image's captions). The token manifest names it in its ``captions_file`` key; a token file without that key has no
captions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from semtok.data.token_file import read_json_file, read_manifest, token_paths
from semtok.errors import SemtokError
from semtok.hub.files import atomic_write

__all__ = ["CAPTIONS_FORMAT", "read_token_captions", "write_token_captions"]

CAPTIONS_FORMAT = "semtok-captions"


def _captions_path(out: str | Path) -> Path:
    """``NAME.captions.json`` for a token file named ``NAME``, ``NAME.json`` or ``NAME.npy``."""
    manifest_path = token_paths(out)[2]
    return manifest_path.with_name(f"{manifest_path.stem}.captions.json")


def _bad_rows(rows: Any) -> str | None:
    """What is wrong with ``rows`` (a list of non-empty lists of non-empty strings), or None."""
    if not isinstance(rows, list):
        return f"captions is {type(rows).__name__}, expected a list of lists of strings"
    for i, row in enumerate(rows):
        if not isinstance(row, list) or not row:
            return f"row {i} is {row!r}, expected a non-empty list of captions"
        if not all(isinstance(caption, str) and caption.strip() for caption in row):
            return f"row {i} holds {row!r}, expected non-empty strings"
    return None


def write_token_captions(out: str | Path, rows: list[list[str]]) -> Path:
    """Write ``rows`` (one non-empty list of non-empty captions per token row) to ``NAME.captions.json``
    atomically; returns its path. Pass ``{"captions_file": path.name}`` in the token manifest's meta."""
    problem = _bad_rows(rows)
    path = _captions_path(out)
    if problem is not None:
        raise SemtokError(f"token captions '{path}': {problem}")
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"format": CAPTIONS_FORMAT, "version": 1, "num_rows": len(rows), "captions": rows}
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(document, ensure_ascii=False)))
    return path


def read_token_captions(token_path: str | Path) -> list[list[str]] | None:
    """The captions of every row of the token file ``token_path`` (``NAME``, ``.json`` or ``.npy``), or None when
    its manifest names no ``captions_file``. Each problem (missing file, not JSON, wrong format, a row that is not
    a non-empty list of non-empty strings, a row count other than the manifest's ``num_images``) is one
    :class:`SemtokError` naming the file."""
    manifest = read_manifest(token_path)
    manifest_path = token_paths(token_path)[2]
    name = manifest.get("captions_file")
    if name is None:
        return None
    if not isinstance(name, str) or not name:
        raise SemtokError(
            f"token manifest '{manifest_path}': captions_file is {name!r}, expected a file name"
        )
    path = manifest_path.parent / name
    if not path.is_file():
        raise SemtokError(f"token captions '{path}' (named by '{manifest_path}') does not exist")
    document = read_json_file(path, "token captions")
    if not isinstance(document, dict) or document.get("format") != CAPTIONS_FORMAT:
        raise SemtokError(f"token captions '{path}' is not a {CAPTIONS_FORMAT} file")
    if document.get("version") != 1:
        raise SemtokError(f"token captions '{path}': version {document.get('version')!r}, expected 1")
    rows = document.get("captions")
    problem = _bad_rows(rows)
    if problem is not None:
        raise SemtokError(f"token captions '{path}': {problem}")
    if len(rows) != manifest["num_images"] or document.get("num_rows") != len(rows):
        raise SemtokError(
            f"token captions '{path}': {len(rows)} rows (num_rows {document.get('num_rows')!r}), the manifest "
            f"'{manifest_path.name}' has {manifest['num_images']} token rows"
        )
    return rows
