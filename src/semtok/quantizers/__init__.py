"""Quantizers. Each returns the triple ``(quantized, ids, aux)``."""

from semtok.quantizers.kmeans import kmeans, nearest_code
from semtok.quantizers.vector_quantizer import VectorQuantizer, VectorQuantizerConfig, codebook_usage

__all__ = ["VectorQuantizer", "VectorQuantizerConfig", "codebook_usage", "kmeans", "nearest_code"]
