"""Token losses of the proposal networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def next_token_loss(logits_BNV: torch.Tensor, ids_BN: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats per token) of next-token logits against the ids."""
    return F.cross_entropy(logits_BNV.reshape(-1, logits_BNV.shape[-1]), ids_BN.reshape(-1))
