"""Captioned image folders: an MS-COCO root or a folder with ``captions.jsonl``, read as unlabelled image folders.

``build_dataset`` recognises both layouts (caption formats: :mod:`semtok.data.caption_files`):

- **COCO root**: a directory holding ``annotations/captions_train2017.json``.
  - split ``"train"``: the images of ``train2017/`` with every caption of ``annotations/captions_train2017.json``
    (about 5 per image);
  - split ``"val"``: the images of ``val2017/`` with ONE caption each from ``annotations/captions_val2017.json``,
    the one with the lowest annotation id. This is the MS-COCO FID protocol used here: every val2017 image that has
    at least one caption, one caption per image -- 5,000 images (and prompts) in the real set.
- **JSONL folder**: a directory with ``captions.jsonl`` at its top level. Every image under it is scanned
  unlabelled (class subfolders give no labels) and split as ``build_dataset`` splits a flat folder (deterministic,
  10 % val by a hash of each file's relative path); captions come from the JSONL, keyed by that relative path.

Images without any caption and captions whose image is not on disk are warned about (one warning per kind), counted
in ``caption_report`` and skipped: images without captions are not items. Items are
``(image_3HW float32 in [-1, 1], -1)``; ``num_classes`` is 0; ``captions_of(index)`` is the item's non-empty list of
captions (every captioned data set, :class:`~semtok.data.captioned_mnist.CaptionedMNIST` too, has it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from semtok.data.caption_files import match_captions, read_caption_jsonl, read_coco_captions
from semtok.data.folder import ImageFolderDataset
from semtok.data.folder_scan import FolderScan, concat_scans, relative_name, scan_image_folder
from semtok.data.items import checked_index
from semtok.errors import SemtokError

__all__ = [
    "COCO_TRAIN_CAPTIONS",
    "JSONL_CAPTIONS",
    "CaptionedImageFolder",
    "CaptionedScan",
    "caption_layout",
    "captioned_scan",
    "coco_scan",
    "concat_captioned",
    "jsonl_scan",
]

COCO_TRAIN_CAPTIONS = Path("annotations") / "captions_train2017.json"
JSONL_CAPTIONS = "captions.jsonl"


@dataclass
class CaptionedScan:
    """A folder scan reduced to the images that have captions: ``captions[i]`` belongs to ``scan.samples[i]``."""

    scan: FolderScan
    captions: list[list[str]]
    report: dict[str, int]
    source: Path


def caption_layout(root: Path) -> str | None:
    """ "coco", "jsonl" or None: which captioned layout the directory ``root`` has."""
    if (root / COCO_TRAIN_CAPTIONS).is_file():
        return "coco"
    if (root / JSONL_CAPTIONS).is_file():
        return "jsonl"
    return None


def captioned_scan(scan: FolderScan, captions: Mapping[str, list[str]], source: Path) -> CaptionedScan:
    """Keep the images of ``scan`` that have captions (keys: paths relative to ``scan.root``); warn and count the
    rest (see :func:`~semtok.data.caption_files.match_captions`). Files skipped as unreadable are not counted again
    as captions without images."""
    names = [relative_name(scan.root, path) for path, _ in scan.samples]
    unreadable = {relative_name(scan.root, path) for path in scan.skipped_files}
    captions = {name: rows for name, rows in captions.items() if name not in unreadable}
    kept, report = match_captions(names, captions, source)
    if not kept:
        raise SemtokError(
            f"captions file '{source}': none of the {len(names)} images under {scan.root} has a caption"
        )
    reduced = FolderScan(
        root=scan.root,
        samples=[scan.samples[i] for i in kept],
        class_names=[],
        labelled=False,
        skipped_files=list(scan.skipped_files),
    )
    return CaptionedScan(reduced, [list(captions[names[i]]) for i in kept], report, source)


def concat_captioned(root: Path, parts: Sequence[CaptionedScan]) -> CaptionedScan:
    """The captioned scans ``parts`` as one, in order (COCO's split "all": train2017 then val2017): samples and
    their captions stay paired; the report counts are summed; ``root`` is the folder above the parts."""
    if len(parts) == 1:
        return parts[0]
    report: dict[str, int] = {}
    for part in parts:
        for key, count in part.report.items():
            report[key] = report.get(key, 0) + count
    return CaptionedScan(
        concat_scans(root, [part.scan for part in parts]),
        [rows for part in parts for rows in part.captions],
        report,
        Path(root) / "annotations",
    )


def coco_scan(root: Path, split: str, check_headers: bool = True) -> CaptionedScan:
    """The captioned images of an MS-COCO root's ``split`` (train: all captions, val: the lowest-id one)."""
    year = "train2017" if split == "train" else "val2017"
    source = root / "annotations" / f"captions_{year}.json"
    captions = read_coco_captions(source)
    scan = scan_image_folder(root / year, labelled=False, check_headers=check_headers)
    captioned = captioned_scan(scan, captions, source)
    if split == "val":
        captioned.captions = [rows[:1] for rows in captioned.captions]
    return captioned


def jsonl_scan(root: Path, check_headers: bool = True) -> CaptionedScan:
    """Every captioned image under ``root`` (unlabelled), captions from ``root/captions.jsonl``."""
    source = root / JSONL_CAPTIONS
    captions = read_caption_jsonl(source)
    scan = scan_image_folder(root, labelled=False, check_headers=check_headers)
    return captioned_scan(scan, captions, source)


class CaptionedImageFolder(ImageFolderDataset):
    """An unlabelled image folder whose every item has captions: ``captions_of(index) -> list[str]``.

    ``indices`` picks a subset of ``captioned.scan.samples`` (e.g. a split); ``caption_report`` holds the counts of
    images without captions and captions without images that were skipped.
    """

    def __init__(
        self,
        captioned: CaptionedScan,
        image_size: int,
        transform: Callable | None = None,
        *,
        seed: int = 0,
        indices: Sequence[int] | None = None,
        split: str | None = None,
    ) -> None:
        scan = captioned.scan
        chosen = range(len(scan.samples)) if indices is None else list(indices)
        self._setup(scan, [scan.samples[i] for i in chosen], image_size, transform, seed, split)
        self.captions = [captioned.captions[i] for i in chosen]
        self.caption_report = dict(captioned.report)
        self.captions_file = captioned.source

    def captions_of(self, index: int) -> list[str]:
        """The captions of item ``index`` (non-empty); of the image that replaced it when its file failed to
        decode in ``__getitem__`` (the next readable index, as there)."""
        n = len(self.samples)
        index = checked_index(index, n)
        for step in range(n):
            if (index + step) % n not in self._bad:
                return list(self.captions[(index + step) % n])
        return list(self.captions[index])

    def describe(self) -> str:
        count = sum(len(rows) for rows in self.captions)
        return f"{super().describe()}; {count} captions from {self.captions_file}"

    def __repr__(self) -> str:
        return f"CaptionedImageFolder({self.describe()})"
