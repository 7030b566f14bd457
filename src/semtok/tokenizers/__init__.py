"""Tokenizers behind one interface; importing this package registers every kind for from_pretrained."""

from semtok.tokenizers.base import Tokenizer
from semtok.tokenizers.vqkd import VQKDConfig, VQKDTokenizer

__all__ = ["Tokenizer", "VQKDConfig", "VQKDTokenizer"]
