"""The Tokenizer interface and its Hugging Face hub-style folder format (config.json + model.safetensors)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from semtok.config import from_dict, to_dict
from semtok.errors import SemtokError
from semtok.hub.files import CONFIG_FILE, WEIGHTS_FILE, atomic_write, load_state_checked

TOKENIZERS: dict[str, type[Tokenizer]] = {}


def register_tokenizer(cls: type[Tokenizer]) -> type[Tokenizer]:
    """Class decorator: make a tokenizer kind loadable by ``Tokenizer.from_pretrained``."""
    TOKENIZERS[cls.kind] = cls
    return cls


class Tokenizer(nn.Module):
    """Maps images to a grid of discrete tokens and back.

    - ``encode(images_B3HW)``: float images in [-1, 1], [B, 3, H, W] -> ``ids_BHW`` int64 in [0, num_codes).
    - ``decode(ids_BHW)``: -> images [B, 3, H, W] in [-1, 1] (only tokenizers with a pixel decoder).
    - ``code_vectors(ids_BHW)``: -> the quantized vectors [B, D, h, w] float32 the ids stand for.
    - ``save_pretrained(dir)`` / ``Tokenizer.from_pretrained(dir)``: ``config.json`` + ``model.safetensors``.
    """

    kind: ClassVar[str] = ""
    config_class: ClassVar[type]

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

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory`` (atomically, file by file)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"kind": self.kind, "semtok_version": _version(), "config": to_dict(self.config)}
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        atomic_write(
            directory / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp, metadata={"kind": self.kind})
        )
        atomic_write(directory / CONFIG_FILE, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))
        return directory

    @staticmethod
    def read_meta(directory: str | os.PathLike) -> dict[str, Any]:
        """The parsed ``config.json`` of a tokenizer folder (kind, config), with clear errors."""
        directory = Path(directory)
        config_path = directory / CONFIG_FILE
        if not directory.exists():
            raise SemtokError(f"tokenizer folder '{directory}' does not exist")
        if not config_path.exists():
            raise SemtokError(f"'{directory}' is not a tokenizer folder: it has no {CONFIG_FILE}")
        try:
            meta = json.loads(config_path.read_text())
        except json.JSONDecodeError as error:
            raise SemtokError(f"'{config_path}' is not valid JSON ({error.msg})") from None
        if not isinstance(meta, dict) or "kind" not in meta or "config" not in meta:
            raise SemtokError(f"'{config_path}' is not a semtok tokenizer config (needs 'kind' and 'config')")
        return meta

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, map_location: str = "cpu") -> Tokenizer:
        """Load a tokenizer folder; called on ``Tokenizer`` it picks the class from ``config.json``'s kind."""
        directory = Path(directory)
        meta = cls.read_meta(directory)
        kind = meta["kind"]
        if kind not in TOKENIZERS:
            raise SemtokError(
                f"'{directory}' holds a tokenizer of unknown kind '{kind}' (known: {list(TOKENIZERS)})"
            )
        target = TOKENIZERS[kind]
        if cls is not Tokenizer and not issubclass(target, cls):
            raise SemtokError(f"'{directory}' holds a '{kind}' tokenizer, not a '{cls.kind}' one")
        config = from_dict(target.config_class, meta["config"])
        model = target(config)
        weights_path = directory / WEIGHTS_FILE
        if not weights_path.exists():
            raise SemtokError(f"'{directory}' has no {WEIGHTS_FILE}")
        try:
            state = load_file(str(weights_path), device=map_location)
        except (SafetensorError, OSError) as error:
            raise SemtokError(f"'{weights_path}' is not a readable safetensors file ({error})") from None
        load_state_checked(
            model, state, f"'{weights_path}' does not match a {kind} tokenizer with this config"
        )
        return model.eval()


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


def _version() -> str:
    from semtok import __version__

    return __version__


def config_replace(config: Any, **changes: Any) -> Any:
    return dataclasses.replace(config, **changes)


def resolve_tokenizer_dir(path: str | Path) -> Path:
    """A run folder (holding ``tokenizer/``) or a tokenizer folder itself -> the tokenizer folder."""
    path = Path(path)
    if (path / "tokenizer" / "config.json").exists():
        return path / "tokenizer"
    if not path.exists():
        raise SemtokError(f"'{path}' does not exist: expected a run folder or a tokenizer folder")
    if not (path / "config.json").exists():
        raise SemtokError(f"'{path}' holds no tokenizer (no config.json, no tokenizer/config.json)")
    return path


def has_pixel_decoder(tokenizer: Tokenizer) -> bool:
    """Whether ``tokenizer.decode`` gives images (pixel tokenizers, or feature tokenizers with a pixel decoder)."""
    return getattr(tokenizer, "pixel_decoder", True) is not None
