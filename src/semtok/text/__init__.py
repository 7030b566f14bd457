"""Frozen text encoders behind one interface: a registry name -> token embeddings ``[B, L, C]`` and a mask."""

from semtok.text.base import TextEmbeddings, TextEncoder
from semtok.text.registry import DEFAULT_TEXT_ENCODER, TEXT_ENCODERS, build_text_encoder

__all__ = ["DEFAULT_TEXT_ENCODER", "TEXT_ENCODERS", "TextEmbeddings", "TextEncoder", "build_text_encoder"]
