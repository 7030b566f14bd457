"""Codebook statistics: usage (share of codes used) and perplexity (exp of the code entropy).

:func:`codebook_stats` is the one place these are computed: evaluation, training logs and every quantizer's
``aux`` (see :mod:`semtok.quantizers.aux_schema`) call it. Metrics sit below quantizers, so this module imports
nothing from them.

Empty histogram (no code counted): usage 0, entropy 0 nats, perplexity ``exp(0) = 1``, codes_used 0. That is the
limit of a histogram that concentrates on one code, and keeps ``perplexity == exp(entropy_nats)`` true everywhere.
"""

from __future__ import annotations

import math
from typing import Any

import torch


def code_histogram(ids: torch.Tensor, num_codes: int) -> torch.Tensor:
    """Counts [num_codes] int64 (on the CPU) of token ids (any shape, int64 in [0, num_codes))."""
    return torch.bincount(ids.reshape(-1).long().cpu(), minlength=num_codes)


def codebook_stats(counts: torch.Tensor, *, as_tensors: bool = False) -> dict[str, Any]:
    """Statistics of a code histogram.

    Args:
        counts: ``[K]`` non-negative counts (any dtype, any device) of each code.
        as_tensors: ``False`` (default): Python numbers, computed in fp64 (the values evaluation writes to JSON and
            training logs). ``True``: 0-d tensors on ``counts``' device, computed in fp32 with no host sync (what a
            quantizer's forward puts in its ``aux``); zero-count codes are masked instead of dropped, so the two
            agree to fp32 precision, not bit-for-bit.

    Returns:
        ``{"usage": share of codes with a count > 0 in [0, 1], "perplexity": exp(entropy_nats) in [1, K],
        "entropy_nats": entropy of the normalised histogram in nats, in [0, log K], "codes_used": number of codes
        with a count > 0}``: floats and an int, or (``as_tensors``) fp32 0-d tensors and an int64 0-d tensor.
        An empty histogram gives usage 0, perplexity 1, entropy 0, codes_used 0 (see the module docstring).

    The paper's "ppl" column is the entropy in nats; we report both, named for what they are.
    """
    counts = counts.detach().float() if as_tensors else counts.detach().double()
    used = counts > 0
    total = counts.sum()
    if as_tensors:  # p log p with p = 0 gives 0 * log(1e-12) = 0: no data-dependent shapes, no sync
        probs = counts / total.clamp_min(1e-12)
        terms = probs * probs.clamp_min(1e-12).log()
    else:  # only the used codes (an empty histogram leaves no terms: entropy 0)
        probs = counts[used] / total
        terms = probs * probs.log()
    entropy = 0.0 - terms.sum()  # 0.0 - x: -x for every x != 0, and +0.0 (not -0.0) for an empty sum
    codes_used = used.sum()
    usage = codes_used.to(counts.dtype) / counts.numel()
    if as_tensors:
        return {
            "usage": usage,
            "perplexity": entropy.exp(),
            "entropy_nats": entropy,
            "codes_used": codes_used,
        }
    entropy_nats = float(entropy)
    return {
        "usage": float(usage),
        "perplexity": math.exp(entropy_nats),
        "entropy_nats": entropy_nats,
        "codes_used": int(codes_used),
    }
