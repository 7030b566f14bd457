"""The Tokenizer interface and its Hugging Face hub-style folder format (config.json + model.safetensors)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from semtok.errors import SemtokError
from semtok.hub.pretrained import PretrainedModel

TOKENIZERS: dict[str, type[Tokenizer]] = {}


def register_tokenizer(cls: type[Tokenizer]) -> type[Tokenizer]:
    """Class decorator: make a tokenizer kind loadable by ``Tokenizer.from_pretrained``."""
    TOKENIZERS[cls.kind] = cls
    return cls


class Tokenizer(nn.Module, PretrainedModel):
    """Maps images to a grid of discrete tokens and back.

    - ``encode(images_B3HW)``: float images in [-1, 1], [B, 3, H, W] -> ``ids_BHW`` int64 in [0, num_codes).
    - ``decode(ids_BHW)``: -> images [B, 3, H, W] in [-1, 1] (only tokenizers with a pixel decoder).
    - ``code_vectors(ids_BHW)``: -> the quantized vectors [B, D, h, w] float32 the ids stand for.
    - ``save_pretrained(dir)`` / ``Tokenizer.from_pretrained(dir)``: ``config.json`` + ``model.safetensors``
      (:class:`semtok.hub.pretrained.PretrainedModel`; a run folder holding ``tokenizer/`` or a hub repo id load
      too); ``info`` is free-form provenance saved with it.
    """

    kind: ClassVar[str] = ""
    config_class: ClassVar[type]
    run_folder: ClassVar[str] = "tokenizer"

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    @property
    def num_codes(self) -> int:
        raise NotImplementedError

    @property
    def grid_size(self) -> tuple[int, int]:
        """Token grid (h, w) for the configured image size."""
        raise NotImplementedError

    def encode(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, ids_BHW: torch.Tensor) -> torch.Tensor:
        raise SemtokError(
            f"this {self.kind} tokenizer has no pixel decoder: train one with `semtok train decoder`"
        )

    @torch.no_grad()
    def code_vectors(self, ids_BHW: torch.Tensor) -> torch.Tensor:
        """The quantized vector each token stands for, as a map.

        Args:
            ids_BHW: token ids ``[B, h, w]`` int64 in ``[0, num_codes)``.

        Returns:
            ``[B, D, h, w]`` float32 on the tokenizer's device: exactly what the quantizer outputs in the
            forward pass for those ids (VQ-KD: its ``code_dim`` codebook entry, unit norm; Cluster: the
            centroid, unit norm, teacher-feature dim; VQGAN / CVQ: the codebook entry, ``code_dim``; FSQ:
            the quantized level values in [-1, 1], ``len(levels)``). ``D = quantizer.code_dim``.

        The default looks the ids up in ``self.quantizer`` (its ``lookup(ids [...]) -> [..., D]``); a
        tokenizer without one must override this.
        """
        quantizer = getattr(self, "quantizer", None)
        if quantizer is None or not hasattr(quantizer, "lookup"):
            raise SemtokError(f"this {self.kind or type(self).__name__} tokenizer has no code vectors")
        check_ids(ids_BHW, self.num_codes)
        device = next(iter(quantizer.buffers()), torch.empty(())).device
        codes_BhwD = quantizer.lookup(ids_BHW.to(device=device, dtype=torch.long))
        return codes_BhwD.float().permute(0, 3, 1, 2).contiguous()

    @classmethod
    def _class_for_kind(cls, kind: str, directory: Path) -> type[Tokenizer]:
        """The registered tokenizer class of ``kind`` (called on a subclass: it must be one of its own)."""
        if kind not in TOKENIZERS:
            raise SemtokError(
                f"'{directory}' holds a tokenizer of unknown kind '{kind}' (known: {list(TOKENIZERS)})"
            )
        target = TOKENIZERS[kind]
        if cls is not Tokenizer and not issubclass(target, cls):
            raise SemtokError(f"'{directory}' holds a '{kind}' tokenizer, not a '{cls.kind}' one")
        return target


def check_ids(ids_BHW: torch.Tensor, num_codes: int) -> None:
    """Raise a SemtokError unless ``ids_BHW`` is an integer ``[B, h, w]`` tensor with values in ``[0, num_codes)``."""
    if ids_BHW.ndim != 3:
        raise SemtokError(f"token ids must be [B, h, w], got {list(ids_BHW.shape)}")
    if ids_BHW.is_floating_point() or ids_BHW.is_complex() or ids_BHW.dtype == torch.bool:
        raise SemtokError(f"token ids must be an integer tensor, got {ids_BHW.dtype}")
    if ids_BHW.numel() and (int(ids_BHW.min()) < 0 or int(ids_BHW.max()) >= num_codes):
        raise SemtokError(
            f"token ids must lie in [0, {num_codes}), got {int(ids_BHW.min())}..{int(ids_BHW.max())}"
        )


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Run a block with ``module`` in eval mode (a quantizer must not update its codebook in ``encode``)."""
    was_training = module.training
    module.train(False)
    try:
        yield
    finally:
        module.train(was_training)


def has_pixel_decoder(tokenizer: Tokenizer) -> bool:
    """Whether ``tokenizer.decode`` gives images (pixel tokenizers, or feature tokenizers with a pixel decoder)."""
    return getattr(tokenizer, "pixel_decoder", True) is not None
