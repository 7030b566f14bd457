"""Finite scalar quantization (Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE Made Simple").

Each of the ``d = len(levels)`` channels is squashed by a shifted tanh into ``levels[i]`` integer bins and
rounded (straight-through); the implicit codebook is the grid of all combinations, ``prod(levels)``
codes, so there is nothing to learn, initialise or restart. Returns the same triple as
:class:`~semtok.quantizers.vector_quantizer.VectorQuantizer`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from semtok.errors import SemtokError
from semtok.metrics.codebook import codebook_stats
from semtok.quantizers.aux_schema import build_aux


class FSQ(nn.Module):
    """Finite scalar quantizer over the last dimension.

    For a channel with ``L`` levels, ``bound(z) = tanh(z + shift) * a - offset`` with
    ``a = (L - 1) / 2 + eps``; odd ``L``: offset 0, shift 0; even ``L``: offset 1/2 and
    ``shift = atanh(offset / a)`` (so ``bound(0) = 0``). Rounding gives the ``L`` integers ``k`` from
    ``-(L // 2)`` to ``(L - 1) // 2``; the code value is ``k / (L // 2)``, in [-1, 1] (even ``L``:
    [-1, 1 - 2/L]).
    A code's id is the mixed-radix number of its digits ``k + L // 2`` (first channel least significant).

    Args:
        levels: bins per channel, each >= 2, e.g. ``[8, 8, 5, 5, 5]`` (8000 codes) or
            ``[8, 8, 8, 5, 5, 5]`` (64000 codes).
        eps: how far the tanh range reaches past the outer integers (< 1/2, so rounding never leaves
            the ``L`` bins, > 0, so the outer bins are reached at finite ``z`` and ``L = 2`` works).
    """

    def __init__(self, levels: Sequence[int], eps: float = 1e-3) -> None:
        super().__init__()
        levels = [int(level) for level in levels]
        if not levels or any(level < 2 for level in levels):
            raise SemtokError(f"FSQ levels must be a non-empty list of ints >= 2, got {levels}")
        self.levels = levels
        self.eps = eps
        levels_t = torch.tensor(levels, dtype=torch.float64)
        if not 0.0 < eps < 0.5:
            raise SemtokError(f"FSQ eps must be in (0, 0.5), got {eps}")
        half_range = (levels_t - 1) / 2 + eps
        offset = (levels_t % 2 == 0).double() * 0.5
        basis = torch.tensor([math.prod(levels[:i]) for i in range(len(levels))], dtype=torch.long)
        # constants, not state: kept out of the state dict, moved by .to()
        self.register_buffer("_levels", levels_t.long(), persistent=False)
        self.register_buffer("_half_range", half_range.float(), persistent=False)
        self.register_buffer("_offset", offset.float(), persistent=False)
        self.register_buffer("_shift", torch.atanh(offset / half_range).float(), persistent=False)
        self.register_buffer("_half_width", (levels_t // 2).float(), persistent=False)
        self.register_buffer("_basis", basis, persistent=False)

    @property
    def num_codes(self) -> int:
        """Size of the implicit codebook, ``prod(levels)``."""
        return math.prod(self.levels)

    @property
    def code_dim(self) -> int:
        return len(self.levels)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, num_codes={self.num_codes}"

    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """Squash ``z`` ``[..., d]`` (fp32) into each channel's rounding range (differentiable, fp32)."""
        return torch.tanh(z + self._shift) * self._half_range - self._offset

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Quantize ``z``.

        Args:
            z: ``[..., d]`` any float dtype, ``d = len(levels)``. The math runs in fp32 (autocast off).

        Returns:
            ``quantized``: z's shape and dtype, values in [-1, 1] on the code grid; its gradient is that of
            ``bound(z) / (L // 2)`` (rounding is straight-through).
            ``ids``: ``z.shape[:-1]`` int64 in ``[0, num_codes)``.
            ``aux``: the schema of :mod:`semtok.quantizers.aux_schema`: ``"loss"`` and ``"commit_loss"``
            (0-d fp32 zeros; FSQ has no auxiliary loss), the usage statistics and ``"counts"`` of this batch,
            ``"restarted"`` 0.
        """
        if z.shape[-1] != self.code_dim:
            raise SemtokError(f"FSQ expects last dim {self.code_dim}, got shape {tuple(z.shape)}")
        with torch.autocast(device_type=z.device.type, enabled=False):
            bounded = self.bound(z.float())
            rounded = bounded + (torch.round(bounded) - bounded).detach()
            quantized = rounded / self._half_width
            digits = torch.round(bounded).long() + self._half_width.long()
            ids = (digits * self._basis).sum(dim=-1)
            zero = torch.zeros((), device=z.device, dtype=torch.float32)
            counts = torch.bincount(ids.reshape(-1), minlength=self.num_codes)
            aux = build_aux(zero, zero.clone(), counts)
        return quantized.to(z.dtype), ids, aux

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """Code values for ``ids`` (int64 ``[...]`` in ``[0, num_codes)``): ``[..., d]`` fp32 in [-1, 1]."""
        digits = torch.div(ids.long()[..., None], self._basis, rounding_mode="floor") % self._levels
        return (digits.float() - self._half_width) / self._half_width

    @torch.no_grad()
    def codebook_stats(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """:func:`~semtok.metrics.codebook.codebook_stats` (0-d tensors, no host sync) of the codes in ``ids``
        (int64, any shape)."""
        return codebook_stats(torch.bincount(ids.reshape(-1), minlength=self.num_codes), as_tensors=True)
