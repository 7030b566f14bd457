"""What a proposal network is conditioned on: a class (one prefix position) or a text (a fixed-length prefix).

Text conditioning follows LlamaGen's scheme: the frozen text encoder's token embeddings (``[B, L, text_dim]``, see
:mod:`semtok.text`) are projected to the model width and put before the image tokens as a prefix of exactly
``text_len`` positions. Shorter texts are padded and longer ones cut; padded positions hold a learned pad vector (so
the prefix needs no attention mask, and a KV cache fills it in one causal pass). A dropped caption (probability
``class_dropout`` in training, and the unconditional half of classifier-free guidance) is a learned null prefix.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from semtok.errors import SemtokError


class TextPrefix(nn.Module):
    """``forward(embeddings_BLC, mask_BL, dropped_B)`` -> the prefix ``[B, text_len, width]``.

    ``embeddings_BLC`` float ``[B, L, text_dim]``, ``mask_BL`` bool (True = a real token), ``dropped_B`` bool or None
    (True = use the null prefix for that row). A row without any real token (an empty prompt) gets the null prefix
    too, so an empty prompt samples unconditionally.
    """

    def __init__(self, text_dim: int, width: int, text_len: int) -> None:
        super().__init__()
        self.text_dim, self.text_len = text_dim, text_len
        self.proj = nn.Linear(text_dim, width)
        self.pad = nn.Parameter(torch.randn(width) * 0.02)
        self.null = nn.Parameter(torch.randn(text_len, width) * 0.02)

    def forward(
        self, embeddings_BLC: torch.Tensor, mask_BL: torch.Tensor, dropped_B: torch.Tensor | None = None
    ) -> torch.Tensor:
        if embeddings_BLC.dim() != 3 or embeddings_BLC.shape[-1] != self.text_dim:
            raise SemtokError(
                f"text condition: expected embeddings [B, L, {self.text_dim}], got {tuple(embeddings_BLC.shape)}"
            )
        batch, length, _ = embeddings_BLC.shape
        embeddings_BLC, mask_BL = embeddings_BLC[:, : self.text_len], mask_BL[:, : self.text_len].bool()
        if length < self.text_len:
            fill = self.text_len - length
            embeddings_BLC = torch.cat(
                [embeddings_BLC, embeddings_BLC.new_zeros(batch, fill, self.text_dim)], 1
            )
            mask_BL = torch.cat([mask_BL, mask_BL.new_zeros(batch, fill)], 1)
        prefix = self.proj(embeddings_BLC.to(self.pad.dtype))  # (proj may be a PackedLinear: no .weight)
        prefix = torch.where(mask_BL[..., None], prefix, self.pad.to(prefix.dtype))
        empty_B = ~mask_BL.any(dim=1)  # no real token (an empty prompt): the unconditional prefix
        dropped_B = empty_B if dropped_B is None else dropped_B.bool() | empty_B
        return torch.where(dropped_B[:, None, None], self.null.to(prefix.dtype)[None], prefix)


class ConditionedModel:
    """Mixin of both proposal networks: the condition prefix from class labels or a text, and the parameter count.
    The model has ``class_embed`` and, when text-conditional, ``text_prefix`` (:class:`TextPrefix`)."""

    def prefix(
        self,
        labels_B: torch.Tensor | None = None,
        text: tuple[torch.Tensor, torch.Tensor] | None = None,
        dropped_B: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The condition's input embeddings ``[B, P, width]``: of a class model (``P`` 1: ``labels_B``, the null class
        dropping) or of a text model (``P`` = ``text_len``: ``text`` = (embeddings, mask), ``dropped_B`` the rows to
        make unconditional)."""
        text_prefix = getattr(self, "text_prefix", None)
        if text_prefix is None:
            if labels_B is None or text is not None:
                raise SemtokError("this model is class-conditional: give class labels, not a text")
            return self.class_embed(labels_B)[:, None]
        if text is None:
            raise SemtokError(
                "this model is text-conditional: give a prompt (text embeddings), not class labels"
            )
        return text_prefix(text[0], text[1], dropped_B)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def init_transformer_weights(model: nn.Module, depth: int) -> None:
    """GPT-2's initialisation: linear and embedding weights N(0, 0.02), biases 0, residual projections (``proj`` /
    ``down``) N(0, 0.02 / sqrt(2 depth)); then the output ``head`` zeroed (uniform predictions at the start)."""

    def init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    model.apply(init)
    for name, parameter in model.named_parameters():
        if name.endswith("proj.weight") or name.endswith("down.weight"):
            nn.init.normal_(parameter, std=0.02 / math.sqrt(2 * depth))
    nn.init.zeros_(model.head.weight)
