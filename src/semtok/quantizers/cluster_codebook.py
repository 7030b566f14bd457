"""The Cluster tokenizer's codebook: fixed unit-norm centroids of teacher features, cosine assignment."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from semtok.errors import SemtokError
from semtok.quantizers.aux_schema import build_aux
from semtok.quantizers.kmeans import cluster_sums, nearest_code


class ClusterCodebook(nn.Module):
    """A fixed cosine codebook: ``codebook`` buffer [K, C] fp32 with unit rows.

    Meets the quantizer interface (``forward(z) -> (quantized, ids, aux)``, ``lookup``, ``code_dim``,
    ``num_codes``); nothing in it trains by gradient.
    """

    def __init__(self, num_codes: int, code_dim: int, chunk_size: int | None = None) -> None:
        super().__init__()
        if num_codes < 1 or code_dim < 1:
            raise SemtokError(f"codebook num_codes and code_dim must be >= 1, got {num_codes}, {code_dim}")
        self.num_codes = num_codes
        self.code_dim = code_dim
        self.chunk_size = chunk_size
        self.register_buffer("codebook", F.normalize(torch.randn(num_codes, code_dim), dim=-1))

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}, code_dim={self.code_dim}, distance='cosine'"

    @torch.no_grad()
    def set_codebook(self, centroids_KC: torch.Tensor) -> None:
        """Replace the codebook with ``centroids_KC`` [K, C] (l2-normalised here)."""
        if tuple(centroids_KC.shape) != tuple(self.codebook.shape):
            raise SemtokError(
                f"codebook: expected centroids {list(self.codebook.shape)}, got {list(centroids_KC.shape)}"
            )
        self.codebook.copy_(F.normalize(centroids_KC.float(), dim=-1))

    @torch.no_grad()
    def assign(self, features_NC: torch.Tensor) -> torch.Tensor:
        """Features [N, C] (any scale) -> ids [N] int64 of the nearest code by cosine."""
        x = F.normalize(features_NC.float(), dim=-1)
        return nearest_code(x, self.codebook.float(), "cosine", self.chunk_size)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """``z`` [..., C] any float dtype -> (code vectors [..., C] fp32 (unit norm, no gradient), ids
        ``z.shape[:-1]`` int64 in ``[0, K)``, aux): aux follows :mod:`semtok.quantizers.aux_schema` (``loss`` and
        ``commit_loss`` 0, ``restarted`` 0) plus ``cosine`` (mean cosine of z to its code)."""
        if z.shape[-1] != self.code_dim:
            raise SemtokError(f"codebook expects last dim {self.code_dim}, got shape {tuple(z.shape)}")
        flat = F.normalize(z.reshape(-1, self.code_dim).float(), dim=-1)
        ids = nearest_code(flat.detach(), self.codebook.float(), "cosine", self.chunk_size)
        q = F.embedding(ids, self.codebook.float())
        counts, _ = cluster_sums(flat.detach(), ids, self.num_codes)
        cosine = (flat.detach() * q).sum(-1).mean() if flat.numel() else flat.new_zeros(())
        aux = build_aux(flat.new_zeros(()), flat.new_zeros(()), counts, cosine=cosine)
        return q.reshape(z.shape), ids.reshape(z.shape[:-1]), aux

    @torch.no_grad()
    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """Code vectors for ``ids`` (int64 ``[...]`` in ``[0, K)``): ``[..., C]`` fp32, unit norm."""
        return F.embedding(ids, self.codebook.float())
