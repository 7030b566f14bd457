"""Codebook statistics: usage (share of codes used) and perplexity (exp of the code entropy)."""

from __future__ import annotations

import math

import torch


def code_histogram(ids: torch.Tensor, num_codes: int) -> torch.Tensor:
    """Counts [num_codes] int64 of token ids (any shape, int64 in [0, num_codes))."""
    return torch.bincount(ids.reshape(-1).long().cpu(), minlength=num_codes)


def codebook_stats(counts: torch.Tensor) -> dict[str, float]:
    """From a code histogram: usage in [0, 1], perplexity exp(H) in [1, K], entropy H in nats.

    The paper's "ppl" column is the entropy in nats; we report both, named for what they are.
    """
    counts = counts.double()
    total = counts.sum().item()
    if total == 0:
        return {"usage": 0.0, "perplexity": 0.0, "entropy_nats": 0.0, "codes_used": 0}
    probs = counts[counts > 0] / total
    entropy = float(-(probs * probs.log()).sum())
    used = int((counts > 0).sum())
    return {
        "usage": used / counts.numel(),
        "perplexity": math.exp(entropy),
        "entropy_nats": entropy,
        "codes_used": used,
    }
