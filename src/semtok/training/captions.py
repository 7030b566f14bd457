"""Captions of a token file as the text condition of a proposal network in training.

The distinct captions are encoded once by the frozen text encoder (:mod:`semtok.text.states`, cached beside the token
file); each step then picks one caption per row uniformly (rows may have several, as MS-COCO's five) and drops it to
the null prefix with probability ``class_dropout`` (LlamaGen / the CFG literature: 0.1). Both draws use the global
torch RNG, which the engine checkpoints, so a resumed run is the uninterrupted one. Val scores use each row's first
caption, never dropped.
"""

from __future__ import annotations

from pathlib import Path

import torch

from semtok.data.token_captions import read_token_captions
from semtok.errors import SemtokError
from semtok.text.base import TextEncoder
from semtok.text.registry import build_text_encoder
from semtok.text.states import encode_captions, states_path


class CaptionCondition:
    """The captions of token file ``token_path`` under text encoder ``encoder`` (a registry name) with prefixes of
    ``text_len`` tokens (0: the encoder's limit, at most 120); ``built``: that encoder already loaded, to reuse. ``condition(rows_B, dropout)`` -> the model's condition keywords ``text`` = (embeddings
    ``[B, text_len, C]`` float32, mask ``[B, text_len]`` bool) and ``dropped_B`` (bool ``[B]``)."""

    def __init__(
        self,
        token_path: str | Path,
        encoder: str,
        weights: str,
        text_len: int,
        progress: bool = True,
        built: TextEncoder | None = None,
    ) -> None:
        rows = read_token_captions(token_path)
        if rows is None:
            raise SemtokError(
                f"token file '{token_path}' has no captions: tokenize a captioned data set (mnist5k-captioned, a "
                "COCO root, a folder with captions.jsonl) for a text model"
            )
        if built is not None:  # that encoder, already loaded (the train set's, for the val set)
            self.encoder = built
        else:
            self.encoder = build_text_encoder(encoder, weights or None, max_length=text_len)
            if not text_len:  # the encoder's own limit, at most LlamaGen's 120
                self.encoder.max_length = min(self.encoder.max_length, 120)
        self.dim, self.text_len = self.encoder.dim, self.encoder.max_length
        distinct = sorted({caption for row in rows for caption in row})
        self.states = encode_captions(
            self.encoder, distinct, states_path(token_path, self.encoder), weights, progress=progress
        )
        index = {caption: i for i, caption in enumerate(distinct)}
        self.counts = torch.tensor([len(row) for row in rows])
        self.offsets = torch.cumsum(self.counts, 0) - self.counts
        self.flat_ids = torch.tensor([index[caption] for row in rows for caption in row])

    def __len__(self) -> int:
        return len(self.counts)

    def condition(
        self, rows_B: torch.Tensor, device: torch.device, dropout: float = 0.0, pick: bool = True
    ) -> dict[str, object]:
        """Condition keywords for token rows ``rows_B`` (int64 ``[B]``): a random caption of each row (``pick``;
        else its first), dropped with probability ``dropout``."""
        rows_B = rows_B.cpu().long()
        choice = torch.zeros_like(rows_B)
        if pick:
            choice = (torch.rand(rows_B.shape) * self.counts[rows_B]).long()
        embeddings, mask = self.states[self.flat_ids[self.offsets[rows_B] + choice]]
        dropped = torch.zeros(rows_B.shape, dtype=torch.bool)
        if dropout > 0:
            dropped = torch.rand(rows_B.shape) < dropout
        return {"text": (embeddings.to(device), mask.to(device)), "dropped_B": dropped.to(device)}
