"""A Cluster codebook learned online (the paper's recipe): codebook loss + re-seeding of unused codes.

Codes are the l2-normalised rows of a learned ``[K, C]`` parameter; features pick their nearest code by cosine;
the loss is ``mse(code, sg[feature])`` (VQ-VAE's codebook term; the encoder is frozen, so no commitment term).
Under several processes the re-seed vectors and the k-means start come from rank 0, so every process keeps an
identical codebook (its gradient is all-reduced by DDP, the counts by the caller).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from semtok.quantizers.aux_schema import build_aux
from semtok.quantizers.kmeans import kmeans, nearest_code


def _world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class OnlineCodebook(nn.Module):
    """A learned codebook ``weight`` [K, C] (codes: its l2-normalised rows) with ``steps_unused`` [K] and
    ``initialized`` buffers. ``forward(x_NC unit rows) -> (codes [N, C], ids [N], aux)``, the quantizer triple;
    a training step is ``forward``, backward of ``aux["loss"]``, optimizer step, all-reduce of ``aux["counts"]``
    (several processes), then :meth:`reseed`."""

    def __init__(self, num_codes: int, code_dim: int, kmeans_iters: int = 10) -> None:
        super().__init__()
        self.num_codes, self.code_dim, self.kmeans_iters = num_codes, code_dim, kmeans_iters
        self.weight = nn.Parameter(F.normalize(torch.randn(num_codes, code_dim), dim=-1))
        self.register_buffer("steps_unused", torch.zeros(num_codes, dtype=torch.long))
        self.register_buffer("initialized", torch.tensor(False))

    def codes(self) -> torch.Tensor:
        return F.normalize(self.weight.float(), dim=-1)

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """k-means (cosine) on rank 0's first batch, broadcast to every process."""
        centroids, _ = kmeans(x, self.num_codes, self.kmeans_iters, "cosine")
        if _world() > 1:
            dist.broadcast(centroids, src=0)
        self.weight.copy_(centroids)
        self.initialized.fill_(True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Assign ``x`` to its nearest codes.

        Args:
            x: ``[N, C]`` any float dtype, l2-normalised rows (the math runs in fp32, autocast off).

        Returns:
            ``codes_NC``: ``[N, C]`` fp32, the chosen codes (unit rows), differentiable w.r.t. ``weight``.
            ``ids_N``: ``[N]`` int64 in ``[0, K)`` (nearest code by cosine).
            ``aux``: the schema of :mod:`semtok.quantizers.aux_schema`: ``"loss"`` is the codebook loss
            ``mse(codes_NC, x)`` (0-d fp32, its gradient goes to ``weight`` only), ``"commit_loss"`` 0,
            ``"counts"`` this process's ``[K]`` fp32 code counts (pass them, all-reduced, to :meth:`reseed`),
            ``"restarted"`` 0 (re-seeding happens in :meth:`reseed`).
        """
        with torch.autocast(device_type=x.device.type, enabled=False):  # codebook math in fp32
            x = x.float()
            codes = self.codes()
            ids = nearest_code(x, codes.detach(), "cosine")
            codes_NC = F.embedding(ids, codes)
            loss = F.mse_loss(codes_NC, x)
            counts = torch.bincount(ids, minlength=self.num_codes).float()
            aux = build_aux(loss, loss.new_zeros(()), counts)
        return codes_NC, ids, aux

    @torch.no_grad()
    def reseed(self, x: torch.Tensor, counts: torch.Tensor, reseed_steps: int) -> int:
        """Count unused steps (``counts`` all-reduced already) and re-seed codes unused for ``reseed_steps``
        from random rows of ``x`` (rank 0's rows under several processes); returns how many."""
        self.steps_unused.add_(1).masked_fill_(counts > 0, 0)
        if reseed_steps <= 0:
            return 0
        dead = (self.steps_unused >= reseed_steps).nonzero().squeeze(1)
        if dead.numel() == 0 or x.shape[0] == 0:
            return 0
        n = x.shape[0]
        rows = torch.randperm(n, device=x.device)[: dead.numel()]
        if rows.numel() < dead.numel():
            rows = torch.randint(n, (dead.numel(),), device=x.device)
        candidates = x[rows].contiguous()
        if _world() > 1:
            dist.broadcast(candidates, src=0)
        self.weight[dead] = candidates.to(self.weight.dtype)
        self.steps_unused[dead] = 0
        return int(dead.numel())
