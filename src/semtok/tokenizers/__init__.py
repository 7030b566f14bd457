"""Tokenizers behind one interface; importing this package registers every kind for from_pretrained."""

from semtok.tokenizers.base import Tokenizer
from semtok.tokenizers.cluster import ClusterConfig, ClusterTokenizer
from semtok.tokenizers.conv_config import ConvNetConfig, DecoderConvConfig
from semtok.tokenizers.feature import FeatureTokenizer
from semtok.tokenizers.fsq import FSQConfig, FSQTokenizer
from semtok.tokenizers.pixel_decoder import PixelDecoder, PixelDecoderConfig
from semtok.tokenizers.vq_config import CVQQuantizerConfig, VQGANQuantizerConfig, VQKDQuantizerConfig
from semtok.tokenizers.vqgan import CVQConfig, CVQTokenizer, VQGANConfig, VQGANTokenizer
from semtok.tokenizers.vqkd import VQKDConfig, VQKDTokenizer

__all__ = [
    "ClusterConfig",
    "ClusterTokenizer",
    "CVQConfig",
    "CVQQuantizerConfig",
    "CVQTokenizer",
    "ConvNetConfig",
    "DecoderConvConfig",
    "FSQConfig",
    "FSQTokenizer",
    "FeatureTokenizer",
    "PixelDecoder",
    "PixelDecoderConfig",
    "Tokenizer",
    "VQGANConfig",
    "VQGANQuantizerConfig",
    "VQGANTokenizer",
    "VQKDConfig",
    "VQKDQuantizerConfig",
    "VQKDTokenizer",
]
