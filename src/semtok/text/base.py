"""The text-encoder interface every conditioning path meets.

``encoder(prompts)`` -> :class:`TextEmbeddings`: ``embeddings_BLC`` float32 (the encoder's last hidden states, one per
text token, padding included), ``mask_BL`` bool (True = a real token). ``L`` is the longest prompt's token count, at
most ``max_length``; longer prompts are truncated to ``max_length`` tokens with one warning naming the prompt (a
conditioning prefix has a fixed budget, and a warning loses no work). Encoders are frozen and in eval mode.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch
from torch import nn

from semtok.errors import SemtokError


class TextEmbeddings(NamedTuple):
    embeddings_BLC: torch.Tensor  # float32 [B, L, C]
    mask_BL: torch.Tensor  # bool [B, L], True = a real token


class TextEncoder(nn.Module):
    """A frozen text encoder. Subclasses set ``name``, ``dim``, ``max_length`` and implement ``_encode``."""

    name: str = ""
    dim: int = 0
    max_length: int = 0

    def freeze(self) -> TextEncoder:
        self.eval()
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> TextEncoder:  # frozen: always in eval mode
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _encode(self, prompts: list[str]) -> TextEmbeddings:
        raise NotImplementedError

    def token_counts(self, prompts: list[str]) -> list[int]:
        """Tokens of each prompt before truncation (special tokens included)."""
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, prompts: list[str] | tuple[str, ...]) -> TextEmbeddings:
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts) or not prompts:
            raise SemtokError("text encoder: expected a non-empty list of prompt strings")
        prompts = list(prompts)
        for prompt, count in zip(prompts, self.token_counts(prompts), strict=True):
            if count > self.max_length:
                warnings.warn(
                    f"prompt {prompt[:60]!r}: {count} tokens, truncated to the {self.name} limit of "
                    f"{self.max_length}",
                    stacklevel=2,
                )
        embeddings, mask = self._encode(prompts)
        return TextEmbeddings(embeddings.float(), mask.bool())
