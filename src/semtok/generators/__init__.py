"""Proposal networks: autoregressive and masked (MaskGIT / MAGE) transformers over image tokens and their samplers."""

from semtok.generators.ar import AR_SIZES, ARConfig, ARTransformer, KVCache
from semtok.generators.masked import MaskedConfig, MaskedTransformer
from semtok.generators.masked_sampling import MASK_SCHEDULES, generate_masked, masked_counts
from semtok.generators.sampling import SamplingConfig, generate, sample_logits

__all__ = [
    "AR_SIZES",
    "MASK_SCHEDULES",
    "ARConfig",
    "ARTransformer",
    "KVCache",
    "MaskedConfig",
    "MaskedTransformer",
    "SamplingConfig",
    "generate",
    "generate_masked",
    "masked_counts",
    "sample_logits",
]
