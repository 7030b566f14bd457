"""Quantizers. Each returns the triple ``(quantized, ids, aux)``."""

from semtok.quantizers.fsq import FSQ
from semtok.quantizers.kmeans import kmeans, nearest_code
from semtok.quantizers.vector_quantizer import VectorQuantizer, VectorQuantizerConfig, codebook_usage

__all__ = ["FSQ", "VectorQuantizer", "VectorQuantizerConfig", "codebook_usage", "kmeans", "nearest_code"]
