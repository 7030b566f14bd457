"""Proposal networks: autoregressive transformers over image tokens and their samplers."""

from semtok.generators.ar import AR_SIZES, ARConfig, ARTransformer, KVCache
from semtok.generators.sampling import SamplingConfig, generate, sample_logits

__all__ = ["AR_SIZES", "ARConfig", "ARTransformer", "KVCache", "SamplingConfig", "generate", "sample_logits"]
