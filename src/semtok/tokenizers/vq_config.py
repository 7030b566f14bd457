"""The vector quantizer that a tokenizer config describes (VQGAN / CVQ-VAE and VQ-KD name the same eight
fields: ``num_codes``, ``code_dim``, ``distance``, ``ema_decay``, ``kmeans_init``, ``kmeans_iters``,
``commitment_weight``, ``dead_code_steps``)."""

from __future__ import annotations

from typing import Any

from semtok.errors import SemtokError
from semtok.quantizers.vector_quantizer import VectorQuantizer

DISTANCES = ("cosine", "l2")


def check_distance(distance: str) -> None:
    """Raise a SemtokError naming ``model.distance`` unless it is cosine or l2."""
    if distance not in DISTANCES:
        raise SemtokError(f"config key 'model.distance': expected cosine or l2, got {distance!r}")


def vector_quantizer(config: Any) -> VectorQuantizer:
    """The EMA vector quantizer of ``config`` (a ``VQGANConfig``, ``CVQConfig`` or ``VQKDConfig``)."""
    return VectorQuantizer(
        num_codes=config.num_codes,
        code_dim=config.code_dim,
        distance=config.distance,
        ema_decay=config.ema_decay,
        kmeans_init=config.kmeans_init,
        kmeans_iters=config.kmeans_iters,
        commitment_weight=config.commitment_weight,
        dead_code_steps=config.dead_code_steps,
    )
