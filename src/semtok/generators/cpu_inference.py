"""Faster CPU sampling: the AR model's linear layers through oneDNN's prepacked fp32 GEMM.

On CPUs where the default BLAS path of ``torch.nn.functional.linear`` is slow for the small, tall-skinny products of
token-by-token decoding (``[batch, width] @ [width, out]``; e.g. MKL on AMD processors), oneDNN's linear kernel with
a weight reordered once ahead of time is several times faster, in the same fp32 precision. :func:`pack_for_cpu`
returns an inference-only copy of a model whose ``nn.Linear`` layers use it; everything else is unchanged.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def onednn_linear_available() -> bool:
    """Whether this torch build has the oneDNN linear ops (CPU builds with MKLDNN, torch >= 2.0)."""
    ops = getattr(torch.ops, "mkldnn", None)
    try:
        return (
            bool(torch.backends.mkldnn.is_available())
            and ops is not None
            and hasattr(ops, "_linear_pointwise")
        )
    except (AttributeError, RuntimeError):
        return False


class PackedLinear(nn.Module):
    """Inference-only stand-in for an fp32 CPU ``nn.Linear``: same maths, weight prepacked for oneDNN."""

    def __init__(self, linear: nn.Linear, batch_hint: int) -> None:
        super().__init__()
        weight = linear.weight.detach()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer(
            "packed", torch.ops.mkldnn._reorder_linear_weight(weight, batch_hint), persistent=False
        )
        bias = None if linear.bias is None else linear.bias.detach()
        self.register_buffer("bias", bias, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")


def pack_for_cpu(model: nn.Module, batch_hint: int = 16) -> nn.Module:
    """An eval-mode copy of ``model`` with every fp32 CPU ``nn.Linear`` replaced by :class:`PackedLinear`.

    Returns ``model`` itself (unchanged) when oneDNN is not available or the model is not fp32 on the CPU, so callers
    can always use it. ``batch_hint``: the rows per product the weights are laid out for (the batch, or twice it
    with classifier-free guidance); other row counts still work. The copy shares no weights with ``model``: pack
    again after training it further.
    """
    parameter = next(model.parameters())
    if not onednn_linear_available() or parameter.device.type != "cpu" or parameter.dtype != torch.float32:
        return model
    packed = copy.deepcopy(model).eval()
    for module in list(packed.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, PackedLinear(child, batch_hint))
    return packed
