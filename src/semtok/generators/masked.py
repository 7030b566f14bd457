"""Class-conditional masked (non-autoregressive) proposal network: a bidirectional transformer, MaskGIT / MAGE style.

Sequence: ``[class] + image tokens in raster order``, where some image tokens are replaced by a learned mask token
(id ``vocab_size`` of the input embedding). Every position attends to every other (no causal mask); the model
predicts the original id at every image position, and training scores the masked ones only
(:mod:`semtok.training.nar`). Class ``num_classes`` is the *null* class for classifier-free guidance, as in the AR
model (or, with ``text_dim`` > 0, a text prefix: :mod:`semtok.generators.conditioning`). Sizes and styles are the AR
model's (:data:`semtok.generators.ar.AR_SIZES`, ``llama`` / ``gpt2`` blocks);
iterative parallel decoding lives in :mod:`semtok.generators.masked_sampling`.

Positions: both styles add a learned absolute position embedding (MaskGIT's and MAGE's ViTs have one); ``llama``
keeps rotary embeddings in attention too. Rotary embeddings alone are not enough here: they touch queries and keys,
not values, so the many identical mask tokens of an early decoding step could hardly tell where they are (a causal
model gets its position from the length of its prefix; a bidirectional one does not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from semtok.errors import SemtokError
from semtok.generators.ar import ARConfig, Block, RMSNorm, rotary_tables
from semtok.generators.conditioning import ConditionedModel, TextPrefix, init_transformer_weights
from semtok.hub.pretrained import PretrainedModel


@dataclass
class MaskedConfig(ARConfig):
    """Shape of the masked model: the AR model's fields (``size``, ``style``, ``class_dropout``...), with
    ``vocab_size``, ``seq_len``, ``grid`` and ``num_classes`` filled in from the token file at training time."""

    @property
    def mask_id(self) -> int:
        """The input id of the mask token (one past the image codes)."""
        return self.vocab_size


class MaskedTransformer(ConditionedModel, nn.Module, PretrainedModel):
    """Bidirectional transformer over ``[class] + image tokens``; see the module docstring.

    ``forward(ids_BN, labels_B)``: ids are ints in ``[0, vocab_size]`` (``vocab_size`` = the mask token), labels ints
    in ``[0, num_classes]`` (``num_classes`` = null class) -> logits ``[B, N, vocab_size]`` float32 over the image
    codes at every image position. Saved and loaded like every model (kind ``"nar"``, run sub-folder ``nar/``).
    """

    kind: ClassVar[str] = "nar"
    config_class: ClassVar[type] = MaskedConfig
    run_folder: ClassVar[str] = "nar"

    def __init__(self, config: MaskedConfig) -> None:
        super().__init__()
        if config.vocab_size <= 0 or config.seq_len <= 0:
            raise SemtokError(
                "masked model: vocab_size and seq_len must be set (they come from the token file)"
            )
        self.config = config
        self.class_embed = nn.Embedding(config.num_classes + 1, config.width)
        self.token_embed = nn.Embedding(config.vocab_size + 1, config.width)  # + the mask token
        if config.text_dim:
            self.text_prefix = TextPrefix(config.text_dim, config.width, config.text_len)
        length = config.seq_len + config.prefix_len
        self.pos_embed = nn.Parameter(torch.zeros(1, length, config.width))
        self.blocks = nn.ModuleList(Block(config, causal=False) for _ in range(config.depth))
        llama = config.style == "llama"
        self.norm = RMSNorm(config.width, config.norm_eps) if llama else nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, config.vocab_size, bias=False)
        cos, sin = rotary_tables(length, config.head_dim, config.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        init_transformer_weights(self, config.depth)
        nn.init.normal_(self.pos_embed, std=0.02)

    def forward(
        self,
        ids_BN: torch.Tensor,
        labels_B: torch.Tensor | None = None,
        text: tuple[torch.Tensor, torch.Tensor] | None = None,
        dropped_B: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits [B, N, vocab_size] (float32) for ids [B, N] (``N == seq_len``; the mask id marks unknowns), given
        class ``labels_B`` or, for a text model, ``text`` = (embeddings, mask) and ``dropped_B``."""
        if ids_BN.shape[1] != self.config.seq_len:
            raise SemtokError(
                f"masked model: {ids_BN.shape[1]} tokens per sample, the model has seq_len {self.config.seq_len}"
            )
        prefix = self.prefix(labels_B, text, dropped_B)
        x = torch.cat([prefix, self.token_embed(ids_BN)], dim=1)
        x = x + self.pos_embed
        rope = (self.rope_cos, self.rope_sin) if self.config.style == "llama" else None
        for block in self.blocks:
            x = block(x, rope)
        return self.head(self.norm(x[:, prefix.shape[1] :])).float()
