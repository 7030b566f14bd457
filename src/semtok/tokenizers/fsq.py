"""FSQ tokenizer: the VQGAN conv autoencoder with finite scalar quantization instead of a codebook.

images -> ConvEncoder -> 1x1 conv to len(levels) -> FSQ -> 1x1 conv -> ConvDecoder -> images. Levels
``(8, 8, 5, 5, 5)`` give 8000 codes, ``(8, 8, 8, 5, 5, 5)`` 64000 (Mentzer et al. 2023).
"""

from __future__ import annotations

from dataclasses import dataclass

from semtok.errors import SemtokError
from semtok.quantizers.fsq import FSQ
from semtok.tokenizers.base import register_tokenizer
from semtok.tokenizers.vqgan import ConvAutoencoderConfig, ConvQuantTokenizer


@dataclass
class FSQConfig(ConvAutoencoderConfig):
    """Conv autoencoder fields (see :class:`~semtok.tokenizers.vqgan.ConvAutoencoderConfig`) + FSQ levels."""

    levels: tuple[int, ...] = (8, 8, 5, 5, 5)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.levels = tuple(int(level) for level in self.levels)
        if not self.levels or min(self.levels) < 2:
            raise SemtokError(
                f"config key 'model.levels': expected a non-empty list of ints >= 2, got {list(self.levels)}"
            )


@register_tokenizer
class FSQTokenizer(ConvQuantTokenizer):
    """Conv autoencoder with an FSQ bottleneck; ``num_codes = prod(levels)``. Same methods as
    :class:`~semtok.tokenizers.vqgan.VQGANTokenizer` (``aux["loss"]`` is always 0)."""

    kind = "fsq"
    config_class = FSQConfig

    def build_quantizer(self, config: FSQConfig) -> FSQ:
        return FSQ(config.levels)
