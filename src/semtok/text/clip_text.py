"""The text tower of an open_clip CLIP model as a text encoder: per-token states after the final LayerNorm."""

from __future__ import annotations

import os

import torch

from semtok.errors import SemtokError
from semtok.text.base import TextEmbeddings, TextEncoder


class OpenClipTextEncoder(TextEncoder):
    """open_clip ``model_name`` (e.g. ViT-B-16) with ``pretrained`` (a tag such as ``openai``, which downloads, a local
    weights file, or None for random weights). Tokens: CLIP's BPE, 77 per prompt, mask up to and including EOT."""

    def __init__(
        self, name: str, model_name: str, pretrained: str | os.PathLike | None, seed: int = 0
    ) -> None:
        super().__init__()
        import open_clip

        self.name = name
        if pretrained is not None and os.sep in str(pretrained) and not os.path.isfile(pretrained):
            raise SemtokError(f"text encoder {name}: weights file '{pretrained}' does not exist")
        torch.manual_seed(seed)
        model = open_clip.create_model(model_name, pretrained=None if pretrained is None else str(pretrained))
        self.token_embedding = model.token_embedding
        self.positional_embedding = model.positional_embedding
        self.transformer = model.transformer
        self.ln_final = model.ln_final
        self.register_buffer("attn_mask", model.attn_mask, persistent=False)
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.max_length = int(self.positional_embedding.shape[0])
        self.dim = int(self.positional_embedding.shape[1])
        self.freeze()

    def token_counts(self, prompts: list[str]) -> list[int]:
        bpe = getattr(self.tokenizer, "encode", None)
        if bpe is None:
            return [0] * len(prompts)
        return [len(bpe(prompt)) + 2 for prompt in prompts]  # + start and end of text

    def _encode(self, prompts: list[str]) -> TextEmbeddings:
        ids = self.tokenizer(prompts).to(self.device)  # [B, 77], zero-padded, EOT = largest id
        x = self.token_embedding(ids) + self.positional_embedding
        x = self.ln_final(self.transformer(x, attn_mask=self.attn_mask))
        length = ids.argmax(dim=-1) + 1  # through the end-of-text token
        mask = torch.arange(ids.shape[1], device=ids.device)[None] < length[:, None]
        longest = int(length.max())
        return TextEmbeddings(x[:, :longest], mask[:, :longest])
