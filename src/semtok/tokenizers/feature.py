"""What feature tokenizers (VQ-KD, Cluster) share: an optional pixel decoder fed with their code vectors.

A feature tokenizer has a ``quantizer`` with ``code_dim`` and ``lookup(ids) -> code vectors`` and a
``pixel_decoder`` attribute (``None`` until `semtok train decoder` attaches one).
"""

from __future__ import annotations

import torch

from semtok.tokenizers.base import Tokenizer, check_ids


class FeatureTokenizer(Tokenizer):
    """Base of tokenizers whose tokens index code vectors in a teacher-derived space.

    Subclasses set ``self.quantizer`` (``code_dim``, ``lookup``) and ``self.pixel_decoder``
    (a :class:`~semtok.tokenizers.pixel_decoder.PixelDecoder` or ``None``).
    """

    @property
    def num_codes(self) -> int:
        """Codebook size, from the config (``config.num_codes``)."""
        return self.config.num_codes

    def pixel_decode(self, ids_BHW: torch.Tensor) -> torch.Tensor:
        """Token ids [B, h, w] -> images [B, 3, H, W] (unclamped, ~[-1, 1]; differentiable in the decoder)."""
        if self.pixel_decoder is None:
            return Tokenizer.decode(self, ids_BHW)  # raises: no pixel decoder
        B, h, w = ids_BHW.shape
        codes_BND = self.quantizer.lookup(ids_BHW.reshape(B, h * w))
        return self.pixel_decoder(codes_BND, (h, w))

    @torch.no_grad()
    def decode(self, ids_BHW: torch.Tensor) -> torch.Tensor:
        """Token ids [B, h, w] int64 -> images [B, 3, H, W] float32 in [-1, 1] (needs a pixel decoder)."""
        if self.pixel_decoder is not None:
            check_ids(ids_BHW, self.num_codes)
        return self.pixel_decode(ids_BHW).clamp(-1, 1)
