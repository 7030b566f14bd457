"""`semtok tokenize --format llamagen`: a semtok token file written to a staging name, then converted."""

from __future__ import annotations

import shutil
from pathlib import Path

from semtok.cli import checks
from semtok.errors import SemtokError

STAGING = ".semtok-staging"


def staging_name(out: str) -> str:
    """The token-file name ``tokenize`` writes first (``OUT/.semtok-staging/tokens``), after checking that ``out``
    can be a LlamaGen code folder: not a file, and not already holding code folders (stale files would mix in)."""
    folder = checks.output_dir(out, "--out")
    assert folder is not None
    if folder.is_dir():
        stale = [child.name for child in folder.iterdir() if child.name.endswith(("_codes", "_labels"))]
        if stale or (folder / "semtok.json").exists():
            raise SemtokError(
                f"--out '{folder}' already holds LlamaGen code folders ({', '.join(stale) or 'semtok.json'}); "
                "expected a new or empty folder"
            )
    return str(folder / STAGING / "tokens")


def publish(token_manifest: Path, out: str, views: int) -> int:
    """Convert the staged token file into LlamaGen's layout under ``out`` and remove the staging folder."""
    from semtok.data.llamagen import write_llamagen
    from semtok.data.token_file import read_manifest

    if read_manifest(token_manifest).get("captions_file"):
        shutil.rmtree(Path(out) / STAGING)
        raise SemtokError(
            "--format llamagen: the data has captions, which LlamaGen's class-conditional layout "
            "(extract_codes_c2i.py: codes + labels) cannot hold; tokenize it with --format semtok"
        )
    manifest = write_llamagen(token_manifest, out)
    shutil.rmtree(Path(out) / STAGING)
    print(
        f"tokens: LlamaGen code folders ({views} view(s) per file) -> {manifest.parent} (manifest {manifest.name})"
    )
    return 0
