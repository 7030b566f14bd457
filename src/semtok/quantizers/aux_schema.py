"""The ``aux`` dict of the ``(quantized, ids, aux)`` triple every quantizer returns: one schema for all.

Keys (every quantizer fills every one of them; :data:`AUX_KEYS`):

``"loss"``
    0-d fp32: what training adds to its loss. It carries the gradient of whatever the quantizer trains by
    gradient: :class:`~semtok.quantizers.vector_quantizer.VectorQuantizer`: ``commitment_weight * commit_loss``
    (to the encoder); :class:`~semtok.quantizers.online_codebook.OnlineCodebook`: the codebook loss
    ``mse(code, sg[x])`` (to the codebook); :class:`~semtok.quantizers.fsq.FSQ` and
    :class:`~semtok.quantizers.cluster_codebook.ClusterCodebook`: a constant 0.
``"commit_loss"``
    0-d fp32, detached: the unweighted commitment term ``mse(z', sg[q])`` (z' the input, l2-normalised for cosine;
    q its code); 0 where the quantizer has none (FSQ, ClusterCodebook, OnlineCodebook: no encoder is trained
    through them).
``"usage"``, ``"perplexity"``, ``"entropy_nats"``, ``"codes_used"``
    0-d tensors (fp32, fp32, fp32, int64) of this call's batch on this process:
    :func:`semtok.metrics.codebook.codebook_stats` of ``counts`` with ``as_tensors=True`` (no host sync; an empty
    batch gives usage 0, perplexity 1, entropy 0, codes_used 0). ``float()`` them to log.
``"restarted"``
    int: codes re-seeded by this call (0 in eval mode). Only VectorQuantizer re-seeds inside its forward;
    OnlineCodebook re-seeds in :meth:`~semtok.quantizers.online_codebook.OnlineCodebook.reseed`, after the
    optimizer step, which returns that number, so its forward reports 0; FSQ and ClusterCodebook never re-seed.
``"counts"``
    ``[K]`` fp32, detached: how many of this call's vectors each code got, on this process (not all-reduced;
    all-reducing it in place changes no other entry).

Quantizer-specific extras:

``"cosine"`` (ClusterCodebook)
    0-d fp32, detached: mean cosine similarity of the inputs to their codes (0 for an empty batch).
"""

from __future__ import annotations

from typing import Any

import torch

from semtok.metrics.codebook import codebook_stats

AUX_KEYS = (
    "loss",
    "commit_loss",
    "usage",
    "perplexity",
    "entropy_nats",
    "codes_used",
    "restarted",
    "counts",
)


def build_aux(
    loss: torch.Tensor,
    commit_loss: torch.Tensor,
    counts: torch.Tensor,
    restarted: int = 0,
    **extras: torch.Tensor,
) -> dict[str, Any]:
    """The aux dict of the schema above.

    Args:
        loss: 0-d fp32 (with grad where the quantizer trains something by gradient).
        commit_loss: 0-d fp32, detached.
        counts: ``[K]`` per-code counts of this batch on this process (any dtype; stored as fp32, the same tensor
            when it is fp32 already).
        restarted: codes re-seeded by this call.
        extras: documented quantizer-specific entries.
    """
    counts = counts.detach().float()
    return {
        "loss": loss,
        "commit_loss": commit_loss,
        **codebook_stats(counts, as_tensors=True),
        "restarted": restarted,
        "counts": counts,
        **extras,
    }
