"""Vector quantizer with an EMA codebook: cosine or l2 distance, k-means init, dead-code restart.

The codebook is a buffer, never trained by gradient: it starts from k-means on the first training
batch and then follows an exponential moving average of the (normalised, for cosine) features assigned
to each code, all-reduced across processes. Codes unused for ``dead_code_steps`` training steps are
re-seeded from batch features. Under ``torch.distributed`` every process ends every step with a
bit-identical codebook.

Returns the triple every semtok quantizer returns: ``(quantized, ids, aux)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from semtok.errors import SemtokError
from semtok.metrics.codebook import codebook_stats
from semtok.quantizers.aux_schema import build_aux
from semtok.quantizers.kmeans import DISTANCES, cluster_sums, kmeans, nearest_code


@dataclass
class VectorQuantizerConfig:
    """Settings of :class:`VectorQuantizer` (the paper's VQ-KD: 8192 x 32, cosine, decay 0.99)."""

    num_codes: int = 8192
    code_dim: int = 32
    distance: str = "cosine"  # "cosine" | "l2"
    ema_decay: float = 0.99
    kmeans_init: bool = True
    kmeans_iters: int = 10
    commitment_weight: float = 1.0
    dead_code_steps: int = 50  # 0 turns restarts off
    chunk_size: int | None = None  # rows scored at a time; None: blocks of 2**25 scores (128 MB)
    eps: float = 1e-5


def _world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _all_gather_rows(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``[N_r, d]`` from every rank (N_r may differ) in rank order: ``[sum N_r, d]``."""
    world = dist.get_world_size()
    size = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    sizes = [int(s) for s in sizes]
    padded = x.new_zeros(max(sizes), x.shape[1])
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


class VectorQuantizer(nn.Module):
    """EMA vector quantizer over the last dimension of its input.

    Buffers (all saved in the state dict):
        codebook ``[K, d]`` fp32 (unit rows for cosine), ema_count ``[K]`` fp32, ema_sum ``[K, d]``
        fp32, steps_unused ``[K]`` int64 (consecutive training steps without an assignment),
        initialized ``[]`` bool.

    Training-mode forward updates the buffers (k-means init on the first call, then EMA and dead-code
    restart); eval mode changes nothing.

    Args: see :class:`VectorQuantizerConfig`. ``chunk_size`` bounds the ``[chunk_size, K]`` score block
    of the assignment, the only temporary that grows with K.
    """

    def __init__(
        self,
        num_codes: int,
        code_dim: int,
        distance: str = "cosine",
        ema_decay: float = 0.99,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        commitment_weight: float = 1.0,
        dead_code_steps: int = 50,
        chunk_size: int | None = None,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise SemtokError(f"quantizer distance must be one of {DISTANCES}, got {distance!r}")
        if num_codes < 1 or code_dim < 1:
            raise SemtokError(f"quantizer num_codes and code_dim must be >= 1, got {num_codes}, {code_dim}")
        if not 0.0 <= ema_decay < 1.0:
            raise SemtokError(f"quantizer ema_decay must be in [0, 1), got {ema_decay}")
        if chunk_size is not None and chunk_size < 1:
            raise SemtokError(f"quantizer chunk_size must be >= 1 or None, got {chunk_size}")
        self.num_codes = num_codes
        self.code_dim = code_dim
        self.distance = distance
        self.ema_decay = ema_decay
        self.kmeans_init = kmeans_init
        self.kmeans_iters = kmeans_iters
        self.commitment_weight = commitment_weight
        self.dead_code_steps = dead_code_steps
        self.chunk_size = chunk_size
        self.eps = eps

        codebook = torch.randn(num_codes, code_dim)
        if distance == "cosine":
            codebook = F.normalize(codebook, dim=-1)
        self.register_buffer("codebook", codebook)
        self.register_buffer("ema_count", torch.ones(num_codes))
        self.register_buffer("ema_sum", codebook.clone())
        self.register_buffer("steps_unused", torch.zeros(num_codes, dtype=torch.long))
        self.register_buffer("initialized", torch.tensor(False))

    @classmethod
    def from_config(cls, config: VectorQuantizerConfig) -> VectorQuantizer:
        return cls(**asdict(config))

    def extra_repr(self) -> str:
        return f"num_codes={self.num_codes}, code_dim={self.code_dim}, distance={self.distance!r}"

    # ---------------------------------------------------------------- forward
    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Quantize ``z``.

        Args:
            z: ``[..., d]`` any float dtype (e.g. ``[B, h, w, d]`` or ``[N, d]``). For cosine it is
                l2-normalised inside (the gradient flows through that normalisation).

        Returns:
            ``quantized``: z's shape and dtype; the code vectors in the forward pass, the
            straight-through identity ``z' + (q - z').detach()`` (z' = normalised z for cosine) in the
            backward pass.
            ``ids``: ``z.shape[:-1]`` int64 in ``[0, num_codes)``.
            ``aux``: the schema of :mod:`semtok.quantizers.aux_schema`: ``"loss"`` (commitment_weight *
            commit_loss, 0-d fp32 with grad), ``"commit_loss"`` (mse(z', q), detached), the usage statistics and
            ``"counts"`` of this process's batch, ``"restarted"`` (int, codes re-seeded this step; 0 in eval).
        """
        if z.shape[-1] != self.code_dim:
            raise SemtokError(f"quantizer expects last dim {self.code_dim}, got shape {tuple(z.shape)}")
        with torch.autocast(device_type=z.device.type, enabled=False):
            flat = z.reshape(-1, self.code_dim).float()
            if self.distance == "cosine":
                flat = F.normalize(flat, dim=-1, eps=self.eps)
            x = flat.detach()
            if self.training and not bool(self.initialized):
                self._init_codebook(x)
            codebook = self.codebook.float()
            ids = nearest_code(x, codebook, self.distance, self.chunk_size)
            q = F.embedding(ids, codebook)
            commit = F.mse_loss(flat, q) if flat.numel() else flat.sum()  # empty batch: 0, not NaN
            if self.training:
                counts, sums = cluster_sums(x, ids, self.num_codes)
                restarted = self._update(x, counts, sums)
            else:
                counts, restarted = torch.bincount(ids, minlength=self.num_codes), 0
            aux = build_aux(self.commitment_weight * commit, commit.detach(), counts, restarted)
            quantized = flat + (q - flat).detach()
        return quantized.to(z.dtype).reshape(z.shape), ids.reshape(z.shape[:-1]), aux

    @torch.no_grad()
    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """Code vectors for ``ids`` (int64 ``[...]`` in ``[0, K)``): ``[..., d]`` fp32."""
        return F.embedding(ids, self.codebook.float())

    @torch.no_grad()
    def codebook_stats(self, ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """:func:`~semtok.metrics.codebook.codebook_stats` (0-d tensors, no host sync) of the codes in ``ids``
        (int64, any shape)."""
        return codebook_stats(torch.bincount(ids.reshape(-1), minlength=self.num_codes), as_tensors=True)

    # ---------------------------------------------------------------- training updates
    @torch.no_grad()
    def _init_codebook(self, x: torch.Tensor) -> None:
        """First training batch: k-means (on all processes' vectors, run on rank 0) or keep the random
        codebook; broadcast from rank 0 so every process starts identical."""
        distributed = _world_size() > 1
        if self.kmeans_init:
            data = _all_gather_rows(x) if distributed else x
            if not distributed or dist.get_rank() == 0:
                codebook, counts = kmeans(
                    data, self.num_codes, self.kmeans_iters, self.distance, self.chunk_size
                )
            else:
                codebook = torch.empty_like(self.codebook, dtype=torch.float32)
                counts = torch.empty_like(self.ema_count, dtype=torch.float32)
            self.codebook.copy_(codebook)
            self.ema_count.copy_(counts.clamp_min(1.0))
        else:
            self.ema_count.fill_(1.0)
        if distributed:
            dist.broadcast(self.codebook, src=0)
            dist.broadcast(self.ema_count, src=0)
        self.ema_sum.copy_(self.codebook * self.ema_count[:, None])
        self.steps_unused.zero_()
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update(self, x: torch.Tensor, counts: torch.Tensor, sums: torch.Tensor) -> int:
        """EMA step on the (all-reduced) counts and sums, then dead-code restart; returns #restarted.

        ``ema_count = decay * ema_count + (1 - decay) * counts``, likewise ``ema_sum``; each code becomes
        ``ema_sum / n_k`` with the Laplace-smoothed count ``n_k = (ema_count_k + eps) / (N + K eps) * N``
        (``N = sum(ema_count)``), l2-normalised for cosine. A code whose ema_count has decayed below
        1e-30 keeps its vector.
        """
        if _world_size() > 1:
            stats = torch.cat([sums, counts[:, None]], dim=1)
            dist.all_reduce(stats)
            sums, counts = stats[:, :-1], stats[:, -1]
        decay = self.ema_decay
        self.ema_count.mul_(decay).add_(counts, alpha=1.0 - decay)
        self.ema_sum.mul_(decay).add_(sums, alpha=1.0 - decay)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + self.eps) / (total + self.num_codes * self.eps) * total
        codes = self.ema_sum / smoothed[:, None]
        if self.distance == "cosine":
            codes = F.normalize(codes, dim=-1)
        alive = (self.ema_count > 1e-30)[:, None]
        self.codebook.copy_(torch.where(alive, codes, self.codebook))
        self.steps_unused.add_(1).masked_fill_(counts > 0, 0)
        return self._restart_dead_codes(x)

    @torch.no_grad()
    def _restart_dead_codes(self, x: torch.Tensor) -> int:
        """Re-seed codes unused for ``dead_code_steps`` steps from random rows of ``x``.

        Each process draws as many random rows of its own batch as there are dead codes (distinct when
        the batch is large enough; all processes agree on that number, as it derives from all-reduced
        counts); the rows are all-gathered and dead code ``j`` takes the candidate of rank
        ``j % world``, so every process writes the same vectors. A restarted code gets ``ema_sum = vector``, ``ema_count = 1``, ``steps_unused = 0``.
        """
        if self.dead_code_steps <= 0:
            return 0
        dead = (self.steps_unused >= self.dead_code_steps).nonzero().squeeze(1)
        num_dead = dead.numel()
        if num_dead == 0:
            return 0
        n = x.shape[0]
        if n >= num_dead:
            candidates = x[torch.randperm(n, device=x.device)[:num_dead]]
        elif n > 0:
            candidates = x[torch.randint(n, (num_dead,), device=x.device)]
        else:  # an empty batch offers the current codes (identical on every process)
            candidates = self.codebook[dead].float()
        world = _world_size()
        if world > 1:
            parts = [torch.empty_like(candidates) for _ in range(world)]
            dist.all_gather(parts, candidates)
            owner = torch.arange(num_dead, device=x.device) % world
            candidates = torch.stack(parts)[owner, torch.arange(num_dead, device=x.device)]
        self.codebook[dead] = candidates.to(self.codebook.dtype)
        self.ema_sum[dead] = candidates.to(self.ema_sum.dtype)
        self.ema_count[dead] = 1.0
        self.steps_unused[dead] = 0
        return num_dead
