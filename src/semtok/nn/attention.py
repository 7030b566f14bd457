"""Scaled dot-product attention that picks the fast precision per device."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs: object) -> torch.Tensor:
    """``F.scaled_dot_product_attention(q, k, v, **kwargs)`` (``[B, heads, T, d]``), run in float32 on a CPU.

    Under bf16 autocast on a CPU, PyTorch's fused attention kernels are 2-3x slower in bf16 than in float32 for
    the short sequences of this repository's models (64-65 tokens, forward + backward, measured on AVX512-BF16);
    the projections around them keep the autocast precision. On GPUs the inputs' dtype is used as given.
    """
    if q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16):
        dtype = q.dtype
        with torch.autocast("cpu", enabled=False):  # autocast would cast the inputs back to bf16
            out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), **kwargs)
        return out.to(dtype)
    return F.scaled_dot_product_attention(q, k, v, **kwargs)
