"""Class-conditional autoregressive proposal network: a decoder-only transformer over image tokens.

Sequence: ``[class] + image tokens in raster order``. The class embedding is the first input; the model predicts
image token ``t`` from the class and tokens ``< t``. A text-conditional model (``text_dim`` > 0) has a prefix of
``text_len`` projected text-encoder states instead of the class (:mod:`semtok.generators.conditioning`).
Class ``num_classes`` is the *null* class used for classifier-free guidance (labels are dropped to it with
probability ``class_dropout`` during training; a text model drops captions to its null prefix likewise).

Two styles (``ARConfig.style``):
- ``llama`` (default, as LlamaGen): RMSNorm, SwiGLU MLP, rotary position embeddings (1-D, raster order), no biases;
- ``gpt2``: LayerNorm, GELU MLP (4x), learned absolute position embeddings, biases.

Inference uses a preallocated key/value cache (:class:`KVCache`): one token per step, attention over the filled
prefix only. Sampling lives in :mod:`semtok.generators.sampling`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from semtok.errors import SemtokError
from semtok.generators.conditioning import ConditionedModel, TextPrefix, init_transformer_weights
from semtok.hub.pretrained import PretrainedModel
from semtok.nn.attention import attention

# name -> (depth, width, heads); "medium" is the paper's 24 x 1024 x 16, the others follow LlamaGen's ladder.
AR_SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (4, 128, 4),
    "mini": (6, 192, 6),
    "small": (8, 384, 6),
    "base": (12, 768, 12),
    "medium": (24, 1024, 16),
    "large": (36, 1280, 20),
}


@dataclass
class ARConfig:
    """Shape of the proposal network. ``vocab_size``, ``seq_len`` and ``num_classes`` of 0 are filled in from the
    token file at training time; ``depth`` / ``width`` / ``heads`` of 0 come from ``size``."""

    size: str = "tiny"  # tiny | mini | small | base | medium | large (see AR_SIZES)
    depth: int = 0
    width: int = 0
    heads: int = 0
    style: str = "llama"  # llama | gpt2
    vocab_size: int = 0  # image codes
    seq_len: int = 0  # image tokens per sample (h * w)
    grid: tuple[int, int] = (0, 0)  # token grid (h, w), for decoding
    num_classes: int = 0  # 0: unconditional (only the null class)
    class_dropout: float = 0.1  # p of replacing the label by the null class in training
    dropout: float = 0.0  # residual dropout (after attention and after the MLP)
    # dropout on the attention probabilities; None = the same p as `dropout` (what every recipe did before the key
    # existed). LlamaGen uses 0 (attn_dropout_p), which also keeps training on PyTorch's fused attention kernels (a
    # non-zero p falls back to the unfused path: 1.21x slower `ar-mnist` steps on the 2-core CPU, RESULTS.md)
    attn_dropout: float | None = None
    mlp_ratio: float = 4.0  # llama: SwiGLU hidden = 2/3 * mlp_ratio * width, rounded up to a multiple of 64
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    # Text conditioning (conditioning.py): text_dim > 0 makes a text model, a prefix of text_len projected states of
    # the frozen text encoder `text_encoder` (a semtok.text registry name) loaded from `text_encoder_weights` ("" =
    # the registry's default). Training fills text_dim from the encoder; class_dropout is then the caption dropout.
    text_dim: int = 0
    text_len: int = 0  # prefix positions of a text model (LlamaGen: 120)
    text_encoder: str = ""
    text_encoder_weights: str = ""

    def __post_init__(self) -> None:
        if self.size not in AR_SIZES:
            raise SemtokError(f"config key 'model.size': expected one of {list(AR_SIZES)}, got {self.size!r}")
        if self.style not in ("llama", "gpt2"):
            raise SemtokError(f"config key 'model.style': expected llama or gpt2, got {self.style!r}")
        depth, width, heads = AR_SIZES[self.size]
        self.depth = self.depth or depth
        self.width = self.width or width
        self.heads = self.heads or heads
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise SemtokError(
                f"config keys 'model.width' {self.width} / 'model.heads' {self.heads}: the head width must be "
                "a whole, even number"
            )
        if not 0.0 <= self.class_dropout < 1.0:
            raise SemtokError(f"config key 'model.class_dropout': expected [0, 1), got {self.class_dropout}")
        for key in ("dropout", "attn_dropout"):
            if getattr(self, key) is not None and not 0.0 <= getattr(self, key) < 1.0:
                raise SemtokError(f"config key 'model.{key}': expected [0, 1), got {getattr(self, key)}")
        text_len_alone = self.text_len > 0 and not self.text_dim and not self.text_encoder
        if (
            (self.text_dim > 0 and self.text_len <= 0)
            or text_len_alone
            or min(self.text_dim, self.text_len) < 0
        ):
            raise SemtokError(
                "config keys 'model.text_dim' / 'model.text_len': both > 0 (text-conditional) or both 0 (class); "
                "with 'model.text_encoder' set, text_dim comes from the encoder"
            )

    @property
    def prefix_len(self) -> int:
        """Condition positions before the image tokens: 1 (the class) or ``text_len``."""
        return self.text_len if self.text_dim else 1

    @property
    def null_class(self) -> int:
        return self.num_classes

    @property
    def head_dim(self) -> int:
        return self.width // self.heads


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normed = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.to(x.dtype) * self.weight


def rotary_tables(seq_len: int, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [seq_len, head_dim] float32 for rotate-half rotary embeddings (frequencies repeated twice)."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x_BHTD: torch.Tensor, cos_TD: torch.Tensor, sin_TD: torch.Tensor) -> torch.Tensor:
    half = x_BHTD.shape[-1] // 2
    rotated = torch.cat([-x_BHTD[..., half:], x_BHTD[..., :half]], dim=-1)
    return x_BHTD * cos_TD + rotated * sin_TD


class KVCache:
    """Preallocated keys and values of every layer: ``[B, heads, max_len, head_dim]`` each, filled left to right."""

    def __init__(
        self, config: ARConfig, batch: int, max_len: int, device: torch.device, dtype: torch.dtype
    ) -> None:
        shape = (batch, config.heads, max_len, config.head_dim)
        self.keys = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.depth)]
        self.values = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.depth)]
        self.max_len = max_len


class Attention(nn.Module):
    """Self-attention, causal (AR) or bidirectional (``causal=False``: the masked model, no cache)."""

    def __init__(self, config: ARConfig, causal: bool = True) -> None:
        super().__init__()
        self.causal = causal
        bias = config.style == "gpt2"
        self.heads = config.heads
        self.qkv = nn.Linear(config.width, 3 * config.width, bias=bias)
        self.proj = nn.Linear(config.width, config.width, bias=bias)
        self.dropout = config.dropout if config.attn_dropout is None else config.attn_dropout
        self.rotary = config.style == "llama"

    def forward(
        self,
        x_BTC: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
        pos: int = 0,
    ) -> torch.Tensor:
        """Self-attention over ``x``. With ``cache`` (keys, values; causal only), ``x`` holds positions
        ``pos .. pos+T-1``."""
        batch, length, width = x_BTC.shape
        q, k, v = (
            self.qkv(x_BTC).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        )
        if self.rotary:
            cos, sin = rope
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is None:
            out = attention(q, k, v, is_causal=self.causal, dropout_p=self.dropout if self.training else 0.0)
        else:
            if length > 1 and pos > 0:
                raise SemtokError("KV cache: several new tokens are only supported from position 0")
            keys, values = cache
            keys[:, :, pos : pos + length] = k
            values[:, :, pos : pos + length] = v
            # One new token attends to the whole filled prefix: no mask. Several new tokens: causal among them.
            out = F.scaled_dot_product_attention(
                q, keys[:, :, : pos + length], values[:, :, : pos + length], is_causal=length > 1 and pos == 0
            )
        return self.proj(out.transpose(1, 2).reshape(batch, length, width))


class SwiGLU(nn.Module):
    def __init__(self, config: ARConfig) -> None:
        super().__init__()
        hidden = int(2 * config.mlp_ratio * config.width / 3)
        hidden = 64 * math.ceil(hidden / 64)
        self.gate_up = nn.Linear(config.width, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, config.width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


class GELUMLP(nn.Module):
    def __init__(self, config: ARConfig) -> None:
        super().__init__()
        hidden = int(config.mlp_ratio * config.width)
        self.up = nn.Linear(config.width, hidden)
        self.down = nn.Linear(hidden, config.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x), approximate="tanh"))


class Block(nn.Module):
    def __init__(self, config: ARConfig, causal: bool = True) -> None:
        super().__init__()
        llama = config.style == "llama"
        self.norm1 = RMSNorm(config.width, config.norm_eps) if llama else nn.LayerNorm(config.width)
        self.attn = Attention(config, causal)
        self.norm2 = RMSNorm(config.width, config.norm_eps) if llama else nn.LayerNorm(config.width)
        self.mlp = SwiGLU(config) if llama else GELUMLP(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
        pos: int = 0,
    ) -> torch.Tensor:
        x = x + self.drop(self.attn(self.norm1(x), rope, cache, pos))
        return x + self.drop(self.mlp(self.norm2(x)))


class ARTransformer(ConditionedModel, nn.Module, PretrainedModel):
    """Decoder-only transformer over ``[class] + image tokens``; see the module docstring.

    ``forward(ids_BN, labels_B)`` gives next-token logits ``[B, N, vocab_size]`` (float) where position ``t``
    predicts image token ``t``. Labels are ints in ``[0, num_classes]`` (``num_classes`` = null class).

    ``save_pretrained(dir)`` / ``ARTransformer.from_pretrained(dir)`` (a model folder, a run folder holding
    ``ar/``, or a hub repo id): :class:`semtok.hub.pretrained.PretrainedModel`, kind ``"ar"``. ``info`` holds the
    training provenance (``tokenizer`` folder, ``tokens`` file, ``data``, ``class_names``).
    """

    kind: ClassVar[str] = "ar"
    config_class: ClassVar[type] = ARConfig
    run_folder: ClassVar[str] = "ar"

    def __init__(self, config: ARConfig) -> None:
        super().__init__()
        if config.vocab_size <= 0 or config.seq_len <= 0:
            raise SemtokError("AR model: vocab_size and seq_len must be set (they come from the token file)")
        self.config = config
        self.class_embed = nn.Embedding(config.num_classes + 1, config.width)
        self.token_embed = nn.Embedding(config.vocab_size, config.width)
        if config.text_dim:
            self.text_prefix = TextPrefix(config.text_dim, config.width, config.text_len)
        length = config.seq_len + config.prefix_len - 1  # the prefix + every image token but the last
        self.pos_embed = (
            nn.Parameter(torch.zeros(1, length, config.width)) if config.style == "gpt2" else None
        )
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = (
            RMSNorm(config.width, config.norm_eps) if config.style == "llama" else nn.LayerNorm(config.width)
        )
        self.head = nn.Linear(config.width, config.vocab_size, bias=False)
        cos, sin = rotary_tables(length, config.head_dim, config.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        init_transformer_weights(self, config.depth)

    def _positions(self, x: torch.Tensor, pos: int) -> tuple[torch.Tensor, tuple | None]:
        length = x.shape[1]
        if self.pos_embed is not None:
            return x + self.pos_embed[:, pos : pos + length], None
        return x, (self.rope_cos[pos : pos + length], self.rope_sin[pos : pos + length])

    def forward(
        self,
        ids_BN: torch.Tensor,
        labels_B: torch.Tensor | None = None,
        text: tuple[torch.Tensor, torch.Tensor] | None = None,
        dropped_B: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher-forced logits [B, N, vocab] for ``N <= seq_len`` tokens: position t predicts ``ids[:, t]``.
        The condition: class ``labels_B``, or ``text`` = (embeddings [B, L, text_dim], mask [B, L]) for a text
        model (``dropped_B``: rows given the null prefix)."""
        if ids_BN.shape[1] > self.config.seq_len:
            raise SemtokError(f"AR model: {ids_BN.shape[1]} tokens, more than seq_len {self.config.seq_len}")
        prefix = self.prefix(labels_B, text, dropped_B)
        x = torch.cat([prefix, self.token_embed(ids_BN[:, :-1])], dim=1)
        x, rope = self._positions(x, 0)
        for block in self.blocks:
            x = block(x, rope)
        return self.head(self.norm(x[:, prefix.shape[1] - 1 :])).float()

    def new_cache(self, batch: int, device: torch.device | None = None) -> KVCache:
        parameter = self.token_embed.weight  # (the head may be a PackedLinear, see cpu_inference)
        length = self.config.seq_len + self.config.prefix_len - 1
        return KVCache(self.config, batch, length, device or parameter.device, parameter.dtype)

    def step(self, inputs_BTC: torch.Tensor, cache: KVCache, pos: int) -> torch.Tensor:
        """Run new input embeddings at positions ``pos..`` through the cached network; logits [B, vocab] of
        the last one (float32)."""
        x, rope = self._positions(inputs_BTC, pos)
        for index, block in enumerate(self.blocks):
            x = block(x, rope, (cache.keys[index], cache.values[index]), pos)
        return self.head(self.norm(x[:, -1])).float()
