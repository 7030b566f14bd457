"""Pre-extracted text-encoder states of a caption list, so training never runs the text encoder per step.

As LlamaGen stores its T5 features before training, the distinct captions of a token file are encoded once and
written beside it (``NAME.text-ENCODER-L.npy`` + ``.mask.npy`` + ``.json``), then memory-mapped:

- ``.npy``: float16 ``[M, L, C]``, the encoder's last hidden states of caption ``m``, zero past its length;
- ``.mask.npy``: bool ``[M, L]``, True = a real token;
- ``.json``: ``{"format": "semtok-text-states", "version": 1, "encoder", "weights", "max_length", "dim",
  "num_captions", "captions_sha256"}``: a file is reused only when all of these match.

``L`` is the encoder's ``max_length`` (the model's ``text_len``): longer captions are truncated with one warning.
Cost: ``M * L * C * 2`` bytes (MS-COCO train, 591,753 captions x 120 x 768 for flan-t5-base: 109 GB; the embedded
default: 4,500 captions x 16 x 384: 55 MB).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from semtok.errors import SemtokError
from semtok.hub.files import atomic_write
from semtok.text.base import TextEncoder

FORMAT = "semtok-text-states"


def captions_digest(captions: list[str]) -> str:
    return hashlib.sha256(json.dumps(captions).encode()).hexdigest()


class TextStates:
    """Memory-mapped states of ``captions`` (see the module docstring); ``states[ids]`` -> (embeddings ``[b, L, C]``
    float32, mask ``[b, L]`` bool) for caption indices ``ids``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_path = self.path.with_suffix(".json")
        try:
            self.meta = json.loads(meta_path.read_text())
            self.embeddings = np.load(self.path, mmap_mode="r", allow_pickle=False)
            self.mask = np.load(self.path.with_suffix(".mask.npy"), allow_pickle=False)
        except (OSError, ValueError) as error:
            raise SemtokError(f"text states '{self.path}' could not be read ({error})") from None
        if self.meta.get("format") != FORMAT or self.embeddings.shape[:2] != self.mask.shape:
            raise SemtokError(f"text states '{self.path}': not a {FORMAT} file, or its arrays disagree")

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    def __getitem__(self, ids: torch.Tensor | list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.asarray(torch.as_tensor(ids).cpu(), dtype=np.int64)
        embeddings = torch.from_numpy(np.ascontiguousarray(self.embeddings[rows])).float()
        return embeddings, torch.from_numpy(np.ascontiguousarray(self.mask[rows]))


def states_path(token_path: str | Path, encoder: TextEncoder) -> Path:
    """Where the states of a token file's captions under ``encoder`` live: beside the token file."""
    stem = Path(token_path)
    stem = stem.with_suffix("") if stem.suffix in (".npy", ".json") else stem
    return stem.parent / f"{stem.name}.text-{encoder.name}-{encoder.max_length}.npy"


def encode_captions(
    encoder: TextEncoder,
    captions: list[str],
    out: str | Path,
    weights: str = "",
    batch_size: int = 256,
    progress: bool = True,
) -> TextStates:
    """The states of ``captions`` under ``encoder`` at ``out`` (``.npy``): reused when a matching file is there,
    otherwise encoded in batches of ``batch_size`` and written atomically. ``weights`` is recorded (and must match
    on reuse): the encoder's weights as given to the registry."""
    out = Path(out)
    expected = {
        "format": FORMAT,
        "version": 1,
        "encoder": encoder.name,
        "weights": str(weights),
        "max_length": encoder.max_length,
        "dim": encoder.dim,
        "num_captions": len(captions),
        "captions_sha256": captions_digest(captions),
    }
    if out.with_suffix(".json").is_file():
        try:
            states = TextStates(out)
        except SemtokError:
            states = None
        if states is not None and states.meta == expected:
            return states
    length = encoder.max_length
    embeddings = np.zeros((len(captions), length, encoder.dim), dtype=np.float16)
    mask = np.zeros((len(captions), length), dtype=bool)
    with tqdm(total=len(captions), desc=f"encode captions ({encoder.name})", disable=not progress) as bar:
        for start in range(0, len(captions), batch_size):
            chunk = captions[start : start + batch_size]
            found = encoder(chunk)
            width = found.embeddings_BLC.shape[1]
            embeddings[start : start + len(chunk), :width] = found.embeddings_BLC.cpu().numpy()
            mask[start : start + len(chunk), :width] = found.mask_BL.cpu().numpy()
            bar.update(len(chunk))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, lambda tmp: np.save(open(tmp, "wb"), embeddings))  # noqa: SIM115
        atomic_write(out.with_suffix(".mask.npy"), lambda tmp: np.save(open(tmp, "wb"), mask))  # noqa: SIM115
        atomic_write(
            out.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(expected, indent=2))
        )
    except OSError as error:
        raise SemtokError(f"text states '{out}' could not be written ({error})") from None
    return TextStates(out)
