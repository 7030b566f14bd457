"""Caption annotation files: JSONL and MS-COCO captions JSON, and matching them with the images on disk.

Both readers return ``{relative image file name (POSIX, as written): [caption str, ...]}`` with every caption
stripped and non-empty.

- JSONL (``captions.jsonl``): one JSON object per line, ``{"file": "relative/path.jpg", "caption": "..."}`` or
  ``{"file": ..., "captions": ["...", ...]}`` (both keys may appear; ``caption`` comes first). Several lines may
  name the same file: its captions are kept in file order. Blank lines are ignored.
- MS-COCO (``annotations/captions_train2017.json``): ``{"images": [{"id", "file_name", ...}], "annotations":
  [{"image_id", "id", "caption"}, ...]}``; each image's captions in increasing annotation ``id``. Listed images
  without annotations get no entry.

Every problem (missing file, not UTF-8, not JSON, a line or entry without the keys) is one :class:`SemtokError`
naming the file (and the line number for JSONL).

``match_captions``: images without a caption and captions whose image is not on disk are each warned about once
(:class:`CaptionMatchWarning`, with the count and the first few names), counted, and skipped.
"""

from __future__ import annotations

import json
import posixpath
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from semtok.errors import SemtokError

__all__ = ["CaptionMatchWarning", "match_captions", "read_caption_jsonl", "read_coco_captions"]

_NAMED = 5  # how many names a warning shows


class CaptionMatchWarning(UserWarning):
    """Images without captions, or captions whose image does not exist; both are skipped."""


def _read_text(path: Path, what: str) -> str:
    if not path.is_file():
        raise SemtokError(f"{what} '{path}': no such file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SemtokError(f"{what} '{path}' is not a UTF-8 text file (expected JSON)") from None
    except OSError as error:
        raise SemtokError(f"{what} '{path}' could not be read ({error})") from None


def _normalise(name: str) -> str:
    return posixpath.normpath(name.replace("\\", "/")).lstrip("/")


def _caption(value: Any) -> str | None:
    """``value`` stripped when it is a non-empty string, else None."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def read_caption_jsonl(path: str | Path) -> dict[str, list[str]]:
    """``{relative file: [caption, ...]}`` from a JSONL captions file (format: the module docstring)."""
    path = Path(path)
    text = _read_text(path, "captions file")
    captions: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"captions file '{path}' line {number}"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            raise SemtokError(f"{where}: not JSON ({error.msg})") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) or not entry["file"].strip():
            raise SemtokError(f'{where}: expected an object with "file" and "caption" or "captions"')
        found: list[Any] = []
        if "caption" in entry:
            found.append(entry["caption"])
        if "captions" in entry:
            if not isinstance(entry["captions"], list):
                raise SemtokError(f'{where}: "captions" must be a list of strings')
            found.extend(entry["captions"])
        if not found:
            raise SemtokError(f'{where}: expected a "caption" or "captions" key')
        stripped = [_caption(value) for value in found]
        if any(value is None for value in stripped):
            raise SemtokError(f"{where}: every caption must be a non-empty string")
        captions.setdefault(_normalise(entry["file"]), []).extend(stripped)  # type: ignore[arg-type]
    return captions


def _int_key(entry: Any, key: str) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get(key), int) and not isinstance(entry[key], bool)


def read_coco_captions(path: str | Path) -> dict[str, list[str]]:
    """``{file_name: [caption, ...]}`` from an MS-COCO captions JSON, captions in increasing annotation id."""
    path = Path(path)
    text = _read_text(path, "COCO captions file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise SemtokError(f"COCO captions file '{path}' is not valid JSON ({error.msg})") from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("images"), list)
        or not isinstance(data.get("annotations"), list)
    ):
        raise SemtokError(
            f"COCO captions file '{path}': expected an object with 'images' and 'annotations' lists"
        )
    names: dict[int, str] = {}
    for position, image in enumerate(data["images"]):
        if not _int_key(image, "id") or not isinstance(image.get("file_name"), str):
            raise SemtokError(
                f"COCO captions file '{path}': images[{position}] lacks an integer 'id' and a 'file_name'"
            )
        names[image["id"]] = _normalise(image["file_name"])
    found: dict[int, list[tuple[int, str]]] = {}
    for position, annotation in enumerate(data["annotations"]):
        if not (_int_key(annotation, "image_id") and _int_key(annotation, "id")):
            raise SemtokError(
                f"COCO captions file '{path}': annotations[{position}] lacks integer 'image_id' and 'id'"
            )
        caption = _caption(annotation.get("caption"))
        if caption is None:
            raise SemtokError(
                f"COCO captions file '{path}': annotation id {annotation['id']} has no non-empty 'caption'"
            )
        if annotation["image_id"] not in names:
            raise SemtokError(
                f"COCO captions file '{path}': annotation id {annotation['id']} names image_id "
                f"{annotation['image_id']}, which 'images' does not list"
            )
        found.setdefault(annotation["image_id"], []).append((annotation["id"], caption))
    return {names[image_id]: [c for _, c in sorted(pairs)] for image_id, pairs in found.items()}


def _warn(count: int, names: Sequence[str], what: str, source: str) -> None:
    shown = ", ".join(names[:_NAMED]) + (", ..." if len(names) > _NAMED else "")
    warnings.warn(f"{source}: skipped {count} {what} ({shown})", CaptionMatchWarning, stacklevel=3)


def match_captions(
    image_names: Sequence[str], captions: Mapping[str, list[str]], source: str | Path
) -> tuple[list[int], dict[str, int]]:
    """Positions in ``image_names`` (relative POSIX names of the images on disk) that have captions, and the report
    ``{"images_without_captions": n, "captions_without_images": m}`` (m counts captions, of all the names in
    ``captions`` that are not on disk). Each non-zero count is warned once, naming ``source`` and a few files."""
    on_disk = set(image_names)
    kept = [i for i, name in enumerate(image_names) if captions.get(name)]
    without_captions = [name for name in image_names if not captions.get(name)]
    without_images = sorted(name for name in captions if name not in on_disk)
    if without_captions:
        _warn(len(without_captions), without_captions, "image(s) without any caption", str(source))
    orphans = sum(len(captions[name]) for name in without_images)
    if without_images:
        _warn(orphans, without_images, "caption(s) whose image does not exist", str(source))
    report = {"images_without_captions": len(without_captions), "captions_without_images": orphans}
    return kept, report
