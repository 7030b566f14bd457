"""The ``model.quantizer`` section of the tokenizers built on the EMA vector quantizer (VQ-KD, VQGAN, CVQ-VAE).

The section is :class:`~semtok.quantizers.vector_quantizer.VectorQuantizerConfig` itself (``num_codes``,
``code_dim``, ``distance``, ``ema_decay``, ``kmeans_init``, ``kmeans_iters``, ``commitment_weight``,
``dead_code_steps``, ``chunk_size``, ``eps``); each tokenizer's subclass only changes the defaults, so a YAML file
or ``--set model.quantizer.KEY=VALUE`` that gives some keys keeps that tokenizer's defaults for the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from semtok.config import nest_flat_keys
from semtok.errors import SemtokError
from semtok.quantizers.vector_quantizer import VectorQuantizerConfig

DISTANCES = ("cosine", "l2")
# the flat model.* keys of configs saved before the section (they are the section's keys)
LEGACY_KEYS = (
    "num_codes",
    "code_dim",
    "distance",
    "ema_decay",
    "kmeans_init",
    "kmeans_iters",
    "commitment_weight",
    "dead_code_steps",
)


@dataclass
class VQKDQuantizerConfig(VectorQuantizerConfig):
    """VQ-KD's quantizer: the paper's 8192 x 32, cosine, EMA 0.99, k-means init (10 iterations)."""

    dead_code_steps: int = 100  # re-seed codes unused for this many steps; 0 disables


@dataclass
class VQGANQuantizerConfig(VectorQuantizerConfig):
    """VQGAN's quantizer: K x 256, L2 distance, k-means init, commitment 0.25, no restarts."""

    code_dim: int = 256
    distance: str = "l2"
    commitment_weight: float = 0.25
    dead_code_steps: int = 0


@dataclass
class CVQQuantizerConfig(VQGANQuantizerConfig):
    """CVQ-VAE's quantizer: as VQGAN's, with cosine distance and re-seeding of codes unused for 20 steps."""

    distance: str = "cosine"
    dead_code_steps: int = 20


def check_quantizer(config: VectorQuantizerConfig) -> None:
    """Raise a SemtokError naming the ``model.quantizer`` key unless the section is usable."""
    if config.distance not in DISTANCES:
        raise SemtokError(
            f"config key 'model.quantizer.distance': expected cosine or l2, got {config.distance!r}"
        )
    for key in ("num_codes", "code_dim"):
        if getattr(config, key) < 1:
            raise SemtokError(
                f"config key 'model.quantizer.{key}': expected an int >= 1, got {getattr(config, key)}"
            )


def upgrade_legacy_quantizer(raw: dict[str, Any]) -> dict[str, Any]:
    """A model config mapping with the flat quantizer keys of old folders moved into a ``quantizer`` section;
    a mapping that already has the section is returned unchanged."""
    return nest_flat_keys(raw, "quantizer", {key: key for key in LEGACY_KEYS})
