"""Pre-tokenised data sets: token ids in one .npy file plus a JSON manifest.

Format (``NAME.npy`` + ``NAME.json`` + ``NAME.labels.npy``):
- ``NAME.npy``: ids, shape ``[N, h, w]``, dtype uint16 when the codebook has at most 65,536 codes, else int32;
  a plain NumPy file, so ``np.load(path, mmap_mode="r")`` memory-maps it.
- ``NAME.labels.npy``: int64 ``[N]`` class labels (-1 where the data set has none).
- ``NAME.json``: ``{"format": "semtok-tokens", "version": 1, "ids_file", "labels_file", "num_images", "grid": [h, w],
  "num_codes", "dtype", "tokenizer": {"path", "kind", "config"}, "data": {"dataset", "split", "image_size",
  "augment"}, "num_classes", "class_names"}``.
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


def write_token_file(
    out: str | Path, ids_NHW: torch.Tensor, labels_N: torch.Tensor, num_codes: int, meta: dict[str, Any]
) -> Path:
    """Write ids [N, h, w] (int64 in [0, num_codes)), labels [N] and the manifest; returns the manifest path."""
    ids_path, labels_path, manifest_path = token_paths(out)
    ids_path.parent.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if num_codes <= 65536 else np.int32
    ids = ids_NHW.cpu().numpy().astype(dtype)
    labels = labels_N.cpu().numpy().astype(np.int64)
    atomic_write(ids_path, lambda tmp: np.save(open(tmp, "wb"), ids))  # noqa: SIM115
    atomic_write(labels_path, lambda tmp: np.save(open(tmp, "wb"), labels))  # noqa: SIM115
    manifest = {
        "format": FORMAT,
        "version": 1,
        "ids_file": ids_path.name,
        "labels_file": labels_path.name,
        "num_images": int(ids.shape[0]),
        "grid": [int(ids.shape[1]), int(ids.shape[2])],
        "num_codes": int(num_codes),
        "dtype": np.dtype(dtype).name,
        **meta,
    }
    atomic_write(manifest_path, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=2)))
    return manifest_path


def read_token_file(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Memory-mapped ids [N, h, w], labels [N] and the manifest of a token file (.json or .npy path)."""
    ids_path, labels_path, manifest_path = token_paths(path)
    if not manifest_path.exists():
        raise SemtokError(f"token file '{path}': no manifest '{manifest_path}'")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as error:
        raise SemtokError(f"'{manifest_path}' is not valid JSON ({error.msg})") from None
    if manifest.get("format") != FORMAT:
        raise SemtokError(f"'{manifest_path}' is not a {FORMAT} manifest")
    ids = np.load(manifest_path.parent / manifest["ids_file"], mmap_mode="r", allow_pickle=False)
    labels = np.load(manifest_path.parent / manifest["labels_file"], allow_pickle=False)
    return ids, labels, manifest


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
