"""Quantizers. Each returns the triple ``(quantized, ids, aux)``; ``aux`` follows one schema, documented in
:mod:`semtok.quantizers.aux_schema` (keys :data:`AUX_KEYS`)."""

from semtok.quantizers.aux_schema import AUX_KEYS, build_aux
from semtok.quantizers.cluster_codebook import ClusterCodebook
from semtok.quantizers.fsq import FSQ
from semtok.quantizers.kmeans import kmeans, nearest_code
from semtok.quantizers.online_codebook import OnlineCodebook
from semtok.quantizers.vector_quantizer import VectorQuantizer, VectorQuantizerConfig

__all__ = [
    "AUX_KEYS",
    "FSQ",
    "ClusterCodebook",
    "OnlineCodebook",
    "VectorQuantizer",
    "VectorQuantizerConfig",
    "build_aux",
    "kmeans",
    "nearest_code",
]
