"""Feature distillation: how far decoded features are from the teacher's (VQ-KD's loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cosine_distillation_loss(decoded_BChw: torch.Tensor, target_BChw: torch.Tensor) -> torch.Tensor:
    """Mean over tokens of 1 - cos(decoded, target); scalar fp32 in [0, 2]."""
    return (1.0 - F.cosine_similarity(decoded_BChw.float(), target_BChw.float(), dim=1)).mean()
