"""Token losses of the proposal networks: next-token (AR) and masked-token (MaskGIT / MAGE)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def next_token_loss(logits_BNV: torch.Tensor, ids_BN: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats per token) of next-token logits against the ids."""
    return F.cross_entropy(logits_BNV.reshape(-1, logits_BNV.shape[-1]), ids_BN.reshape(-1))


def masked_token_loss(
    logits_BNV: torch.Tensor, ids_BN: torch.Tensor, masked_BN: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Mean cross-entropy (nats per token) over the masked positions only (``masked_BN`` bool, True = masked):
    what the masked model is trained on. ``label_smoothing`` as in ``F.cross_entropy`` (MaskGIT: 0.1)."""
    logits = logits_BNV.reshape(-1, logits_BNV.shape[-1])
    targets = ids_BN.reshape(-1).masked_fill(~masked_BN.reshape(-1), -100)  # -100: ignored
    return F.cross_entropy(logits, targets, ignore_index=-100, label_smoothing=label_smoothing)
