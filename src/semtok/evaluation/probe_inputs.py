"""The linear probe's inputs: which features of an image's token ids the probe reads (:mod:`semtok.evaluation.probe`)."""

from __future__ import annotations

import torch

from semtok.errors import SemtokError
from semtok.tokenizers.base import Tokenizer

PROBE_INPUTS: dict[str, str] = {
    "pooled": "mean of code vectors over the token grid",
    "flat": "code vectors of every grid cell, flattened ([D, h, w] -> h*w*D)",
    "decoded": "mean of decode_features(ids) (teacher-space reconstruction) over the token grid",
    "histogram": "bag of codes: each code's share of the grid's tokens ([num_codes])",
}
"""The probe's inputs (features of an image's token ids) and how each is built (recorded as ``pooling``)."""


def check_probe_input(tokenizer: Tokenizer, inputs: str) -> None:
    """Raise a one-line SemtokError unless ``inputs`` is a key of :data:`PROBE_INPUTS` this tokenizer has."""
    if inputs not in PROBE_INPUTS:
        raise SemtokError(f"probe input: expected one of {', '.join(PROBE_INPUTS)}, got {inputs!r}")
    if inputs == "decoded" and not callable(getattr(tokenizer, "decode_features", None)):
        raise SemtokError(
            f"probe input 'decoded' needs a feature tokenizer (vqkd, cluster) with decode_features; "
            f"a {tokenizer.kind!r} tokenizer has none (use pooled, flat or histogram)"
        )


def token_features(tokenizer: Tokenizer, ids_BHW: torch.Tensor, inputs: str = "pooled") -> torch.Tensor:
    """The probe's features ``[B, F]`` float32 of token ids ``[B, h, w]`` (``inputs``: see :data:`PROBE_INPUTS`;
    F = D for pooled, h*w*D for flat, the teacher dim for decoded, num_codes for histogram)."""
    check_probe_input(tokenizer, inputs)
    if inputs == "histogram":
        ids_BN = ids_BHW.reshape(len(ids_BHW), -1).long()
        counts = torch.zeros(len(ids_BN), tokenizer.num_codes, dtype=torch.float32, device=ids_BN.device)
        counts.scatter_add_(1, ids_BN, torch.ones(ids_BN.shape, dtype=torch.float32, device=ids_BN.device))
        return (counts / max(ids_BN.shape[1], 1)).cpu()
    if inputs == "decoded":
        return tokenizer.decode_features(ids_BHW).float().mean(dim=(2, 3)).cpu()
    vectors = tokenizer.code_vectors(ids_BHW).float()
    return (vectors.mean(dim=(2, 3)) if inputs == "pooled" else vectors.flatten(1)).cpu()
