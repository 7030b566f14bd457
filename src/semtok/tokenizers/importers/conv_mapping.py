"""Mapping a public VQGAN-family state dict onto semtok's :class:`~semtok.tokenizers.vqgan.VQGANTokenizer`.

taming-transformers' VQGAN and LlamaGen's VQ-16 compute the same function as semtok's conv autoencoder (GroupNorm
32 groups, eps 1e-6; SiLU; ResNet blocks with a 1x1 skip; single-head attention over H*W with separate q / k / v
1x1 convs scaled by C^-1/2; a stride-2 3x3 conv after padding (0, 1, 0, 1); nearest x2 upsampling then a 3x3 conv;
mid = ResNet, attention, ResNet), with other module names. :class:`SourceState` hands out the source tensors one
explicit name at a time and, at the end, names the first source key nothing used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import torch

from semtok.errors import SemtokError
from semtok.tokenizers.conv_config import ConvNetConfig
from semtok.tokenizers.vq_config import VQGANQuantizerConfig
from semtok.tokenizers.vqgan import VQGANConfig, VQGANTokenizer


class SourceState:
    """A source state dict whose keys are taken explicitly; ``finish`` rejects any key left over.

    Args:
        state: the checkpoint's ``{name: tensor}``.
        path, source: the file and importer name, for messages.
        dropped: a predicate for keys deliberately not imported (losses, usage statistics).
    """

    def __init__(
        self,
        state: dict[str, torch.Tensor],
        path: str | os.PathLike,
        source: str,
        dropped: Callable[[str], bool],
    ) -> None:
        self.state, self.path, self.source = state, path, source
        self.used: set[str] = set()
        self.dropped = sorted(k for k in state if dropped(k))

    def where(self) -> str:
        return f"{self.source} checkpoint '{self.path}'"

    def take(self, key: str) -> torch.Tensor:
        """The tensor under ``key`` (fp32); a missing key is a SemtokError naming it."""
        if key not in self.state:
            raise SemtokError(f"{self.where()} is missing key '{key}' (not a {self.source} VQ checkpoint?)")
        self.used.add(key)
        return self.state[key].float()

    def has(self, key: str) -> bool:
        return key in self.state

    def count(self, prefix: str) -> int:
        """How many consecutive indices ``i`` have keys starting with ``f"{prefix}.{i}."`` (0 if none)."""
        pattern = re.compile(re.escape(prefix) + r"\.(\d+)\.")
        found = {int(m.group(1)) for k in self.state if (m := pattern.match(k))}
        n = 0
        while n in found:
            n += 1
        return n

    def finish(self) -> None:
        """Raise a SemtokError naming the first key neither taken nor deliberately dropped."""
        extra = sorted(k for k in self.state if k not in self.used and k not in self.dropped)
        if extra:
            raise SemtokError(
                f"{self.where()} has unexpected key '{extra[0]}' ({len(extra)} unexpected in all)"
            )


def conv(out: dict, dst: str, src: SourceState, key: str) -> None:
    """Copy ``{key}.weight`` / ``{key}.bias`` to ``{dst}.weight`` / ``{dst}.bias``."""
    for p in ("weight", "bias"):
        out[f"{dst}.{p}"] = src.take(f"{key}.{p}")


def resnet(out: dict, dst: str, src: SourceState, key: str) -> None:
    """A ResNet block: norm1, conv1, norm2, conv2 and, when present, the 1x1 ``nin_shortcut`` -> ``skip``."""
    for name in ("norm1", "conv1", "norm2", "conv2"):
        conv(out, f"{dst}.{name}", src, f"{key}.{name}")
    if src.has(f"{key}.nin_shortcut.weight"):
        conv(out, f"{dst}.skip", src, f"{key}.nin_shortcut")


def attention(out: dict, dst: str, src: SourceState, key: str) -> None:
    """An attention block: norm; q, k, v concatenated (in that order) into ``qkv``; ``proj_out`` -> ``proj``."""
    conv(out, f"{dst}.norm", src, f"{key}.norm")
    for p in ("weight", "bias"):
        out[f"{dst}.qkv.{p}"] = torch.cat([src.take(f"{key}.{n}.{p}") for n in ("q", "k", "v")])
    conv(out, f"{dst}.proj", src, f"{key}.proj_out")


def build_tokenizer(
    src: SourceState,
    *,
    channels: int,
    channel_mult: list[int],
    num_res_blocks: int,
    z_channels: int,
    attn_levels: list[int],
    codebook: torch.Tensor,
    distance: str,
    image_size: int,
    state: dict[str, torch.Tensor],
) -> VQGANTokenizer:
    """A VQGAN tokenizer of the given architecture holding ``state`` (every conv key) and ``codebook`` [K, D].

    ``attn_levels``: the encoder levels (0 = full resolution) with attention; at ``image_size`` they become
    ``attn_resolutions``. The quantizer is marked initialised (no k-means on a first training step) and its EMA
    statistics start from the codebook with count 1.
    """
    factor = 2 ** (len(channel_mult) - 1)
    if image_size < factor or image_size % factor:
        raise SemtokError(f"option --image-size: expected a positive multiple of {factor}, got {image_size}")
    config = VQGANConfig(
        image_size=image_size,
        conv=ConvNetConfig(
            channels=channels,
            channel_mult=tuple(channel_mult),
            num_res_blocks=num_res_blocks,
            z_channels=z_channels,
            attn_resolutions=tuple(image_size // 2**i for i in attn_levels),
        ),
        quantizer=VQGANQuantizerConfig(
            num_codes=codebook.shape[0], code_dim=codebook.shape[1], distance=distance, kmeans_init=False
        ),
    )
    tokenizer = VQGANTokenizer(config)
    full = dict(state)
    full["quantizer.codebook"] = codebook
    full["quantizer.ema_count"] = torch.ones(codebook.shape[0])
    full["quantizer.ema_sum"] = codebook.clone()
    full["quantizer.steps_unused"] = torch.zeros(codebook.shape[0], dtype=torch.long)
    full["quantizer.initialized"] = torch.tensor(True)
    expected = tokenizer.state_dict()
    for key, value in expected.items():
        if key not in full:
            raise SemtokError(f"{src.where()}: no source tensor for '{key}' (architecture not recognised)")
        if full[key].shape != value.shape:
            raise SemtokError(
                f"{src.where()}: tensor for '{key}' has shape {list(full[key].shape)}, the architecture read "
                f"from the checkpoint needs {list(value.shape)}"
            )
    tokenizer.load_state_dict(full)
    return tokenizer.eval()
