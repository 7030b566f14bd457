"""Checks of a verb's paths and options, run before any work starts.

Each check raises a one-line :class:`~semtok.errors.SemtokError` that names the flag, the value and what was
expected (``main`` prints it as ``semtok: error: ...`` and exits with code 2). The checks only look at the file
system and at small JSON files (no model is loaded, no data set read), so a bad command fails at once.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from semtok.errors import SemtokError
from semtok.hub import CONFIG_FILE, WEIGHTS_FILE


def positive_int(value: int | None, flag: str, what: str = "an int >= 1") -> None:
    """``value`` (None = not given, allowed) must be an int >= 1."""
    if value is not None and value < 1:
        raise SemtokError(f"{flag}: expected {what}, got {value}")


def non_negative_int(value: int | None, flag: str) -> None:
    """``value`` (None = not given, allowed) must be an int >= 0."""
    if value is not None and value < 0:
        raise SemtokError(f"{flag}: expected an int >= 0, got {value}")


def input_file(path: str | None, flag: str, what: str = "file") -> Path | None:
    """An existing file (None = not given, allowed)."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if not path.exists():
        raise SemtokError(f"{flag} '{path}': {what} does not exist")
    if not path.is_file():
        raise SemtokError(f"{flag} '{path}' is a folder, expected a {what}")
    return path


def _check_parents(path: Path, flag: str) -> None:
    """No existing ancestor of ``path`` may be a file (the output could not be created under it)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise SemtokError(
                    f"{flag} '{path}': '{parent}' is a file, so nothing can be written under it"
                )
            return


def output_file(
    path: str | Path | None, flag: str, suffixes: Sequence[str] | None = None, expected: str | None = None
) -> Path | None:
    """A file to write (None = not given, allowed): not an existing folder, no ancestor a file, and with one of
    ``suffixes`` (lower-case, with the dot) when given; ``expected`` describes them in the message."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if suffixes is not None and path.suffix.lower() not in suffixes:
        expected = expected or f"a file name ending in {' or '.join(suffixes)}"
        raise SemtokError(f"{flag} '{path}': expected {expected}")
    if path.is_dir():
        raise SemtokError(f"{flag} '{path}' is a folder, expected a file name")
    _check_parents(path, flag)
    return path


def output_dir(path: str | Path | None, flag: str) -> Path | None:
    """A folder to write into (None = not given, allowed): not an existing file, no ancestor a file."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise SemtokError(f"{flag} '{path}' is a file, expected a folder (existing or new)")
    _check_parents(path, flag)
    return path


def image_suffixes() -> tuple[str, ...]:
    """File name endings PIL can write (.png, .jpg, ...), lower-case with the dot."""
    from PIL import Image

    Image.init()
    return tuple(sorted(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.SAVE))


def data_source(spec: str | None, flag: str = "--data") -> None:
    """A data set: 'mnist5k' or an existing image folder (None = the run's own, allowed)."""
    if spec is None or str(spec).lower() == "mnist5k":
        return
    path = Path(spec).expanduser()
    if not path.exists():
        raise SemtokError(f"{flag} '{spec}': expected 'mnist5k' or an existing image folder")
    if not path.is_dir():
        raise SemtokError(f"{flag} '{spec}' is a file, expected 'mnist5k' or an image folder")


def model_folder(path: str | Path, flag: str, what: str, subdir: str, kind: str | None = None) -> Path:
    """A run folder holding ``subdir/`` or a model folder itself, with a readable ``config.json`` (of ``kind``
    when given) and a ``model.safetensors``; returns the model folder.

    ``what`` names the model in messages ("tokenizer", "AR model", "judge"); ``flag`` the option ("" for the
    positional PATH).
    """
    given = Path(path).expanduser()
    a_what = f"{'an' if what[0] in 'AEIOUaeiou' else 'a'} {what}"
    label = f"{flag} '{given}'" if flag else f"'{given}'"
    if not given.exists():
        raise SemtokError(f"{label} does not exist: expected a run folder or {a_what} folder")
    if not given.is_dir():
        raise SemtokError(f"{label} is a file, expected a run folder or {a_what} folder")
    folder = given / subdir if (given / subdir / CONFIG_FILE).is_file() else given
    config = folder / CONFIG_FILE
    if not config.is_file():
        raise SemtokError(f"{label} holds no {what} (no {CONFIG_FILE}, no {subdir}/{CONFIG_FILE})")
    try:
        meta = json.loads(config.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as error:
        raise SemtokError(f"{label}: '{config}' is not valid JSON ({type(error).__name__})") from None
    found = meta.get("kind") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or (kind is not None and found != kind):
        raise SemtokError(f"{label}: '{config}' describes a {found!r}, expected {a_what} (kind {kind!r})")
    if not (folder / WEIGHTS_FILE).is_file():
        raise SemtokError(f"{label}: '{folder}' has no {WEIGHTS_FILE} (an unfinished run?)")
    return folder


def tokenizer_folder(path: str | Path | None, flag: str = "") -> Path | None:
    """A run folder or tokenizer folder holding a tokenizer (None = not given, allowed)."""
    return None if path is None else model_folder(path, flag, "tokenizer", "tokenizer")


def ar_folder(path: str | Path, flag: str = "") -> Path:
    """An AR run folder or AR model folder holding a trained AR model."""
    return model_folder(path, flag, "AR model", "ar", kind="ar")


def judge_folder(path: str | Path | None, flag: str = "--judge") -> Path | None:
    """A judge run folder or judge folder holding a trained judge (None = not given, allowed)."""
    return None if path is None else model_folder(path, flag, "judge", "judge", kind="judge")


def token_output(name: str, flag: str = "--out") -> None:
    """The output name of ``semtok tokenize``: none of NAME.npy, NAME.labels.npy, NAME.json may be a folder."""
    from semtok.data.token_file import token_paths

    for path in token_paths(name):
        output_file(path, flag)


def add_sampling_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The sampling flags of `sample` and `evaluate --generation` (the paper's defaults)."""
    parser.add_argument("--cfg", type=float, default=1.75, help="classifier-free guidance scale (1 = off)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=600, help="0 = off (default 600)")
    parser.add_argument("--top-p", type=float, default=0.92, help="1 = off (default 0.92)")
