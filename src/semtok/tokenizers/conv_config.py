"""The ``conv`` config section: the conv encoder / decoder architecture that the pixel tokenizers (VQGAN, CVQ-VAE,
FSQ: ``model.conv``) and the pixel decoder of the feature tokenizers (``decoder.conv`` in `semtok train decoder`,
``model.pixel_decoder.conv`` in a tokenizer folder) share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from semtok.config import nest_flat_keys
from semtok.errors import SemtokError

# the flat keys of configs saved before the section (they are the section's keys)
LEGACY_KEYS = ("channels", "channel_mult", "num_res_blocks", "z_channels", "attn_resolutions")


@dataclass
class ConvNetConfig:
    """Conv encoder / decoder architecture (VQGAN's defaults: 128 x (1, 1, 2, 2, 4), attention at 16 px).

    ``len(channel_mult) - 1`` down- (encoder) or upsamplings (decoder) by 2; attention runs at the levels whose
    side is in ``attn_resolutions``.
    """

    channels: int = 128
    channel_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 256
    attn_resolutions: tuple[int, ...] = (16,)

    def __post_init__(self) -> None:
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        self.attn_resolutions = tuple(int(r) for r in self.attn_resolutions)

    def check(self, prefix: str) -> None:
        """Raise a SemtokError naming ``{prefix}KEY`` unless the section is usable."""
        if not self.channel_mult or min(self.channel_mult) < 1:
            raise SemtokError(
                f"config key '{prefix}channel_mult': expected a non-empty list of ints >= 1, "
                f"got {list(self.channel_mult)}"
            )
        for key in ("channels", "num_res_blocks", "z_channels"):
            if getattr(self, key) < 1:
                raise SemtokError(
                    f"config key '{prefix}{key}': expected an int >= 1, got {getattr(self, key)}"
                )

    def kwargs(self, image_size: int) -> dict[str, Any]:
        """The keyword arguments of :class:`~semtok.nn.conv.ConvEncoder` / :class:`~semtok.nn.conv.ConvDecoder`."""
        return {
            "channels": self.channels,
            "channel_mult": self.channel_mult,
            "num_res_blocks": self.num_res_blocks,
            "z_channels": self.z_channels,
            "attn_resolutions": self.attn_resolutions,
            "image_size": image_size,
        }


@dataclass
class DecoderConvConfig(ConvNetConfig):
    """The pixel decoder's conv section: as VQGAN's, without attention by default."""

    attn_resolutions: tuple[int, ...] = ()


def upgrade_legacy_conv(raw: dict[str, Any]) -> dict[str, Any]:
    """A config mapping with the flat conv keys of old folders moved into a ``conv`` section; a mapping that
    already has the section is returned unchanged."""
    return nest_flat_keys(raw, "conv", {key: key for key in LEGACY_KEYS})


def upgrade_legacy_pixel_decoder(raw: dict[str, Any]) -> dict[str, Any]:
    """A feature tokenizer's model mapping whose ``pixel_decoder`` (if any) has its conv keys in the section."""
    if isinstance(raw.get("pixel_decoder"), dict):
        return {**raw, "pixel_decoder": upgrade_legacy_conv(raw["pixel_decoder"])}
    return raw
