"""Inception Score (Salimans et al. 2016) as torch-fidelity computes it.

Protocol (torch-fidelity ``isc``, the field's reference numbers): the 1008-way ``logits_unbiased`` (TF-Inception
2015-12-05 logits before the bias, see :mod:`semtok.metrics.inception`) of the generated images are shuffled with
``numpy.random.RandomState(2020).permutation``, cut into ``splits`` = 10 parts (part ``i`` is rows
``[i N // splits, (i + 1) N // splits)``), and in float64 each part scores

    IS_i = exp( mean_x KL( p(y | x) || p(y) ) ),  p(y | x) = softmax(logits), p(y) = mean over the part of p(y | x)

The score is the mean of the ``IS_i`` and its spread their (population) standard deviation. IS lies in
[1, number of classes]: 1 when every image gets the same prediction, C when predictions are confident and spread
evenly over C classes.

Only the full ``pt_inception-2015-12-05`` weights file gives logits (``InceptionFeatures(weights=FILE)``); with the
bundled pool3-only TorchScript the score is reported as skipped, with the reason (:func:`inception_score_report`),
never replaced by another network's score under the same name.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from semtok.errors import SemtokError
from semtok.metrics.inception import LOGITS_UNAVAILABLE

__all__ = ["IS_PROTOCOL", "inception_score_from_logits", "inception_score_report"]

IS_PROTOCOL = "torch-fidelity isc: softmax of TF-Inception logits_unbiased, shuffled (seed 2020), 10 splits"


def inception_score_from_logits(
    logits: Any, splits: int = 10, shuffle: bool = True, seed: int = 2020
) -> tuple[float, float]:
    """(mean, std) of the Inception Score of logits [N, C] (numpy or torch, any float dtype; N >= splits).

    ``shuffle``/``seed``: the rows are permuted with ``numpy.random.RandomState(seed)`` first (torch-fidelity's
    default); ``shuffle=False`` keeps their order. Computed in float64 with a log-softmax (no overflow for large
    logits). Returns Python floats: mean in [1, C], std >= 0 (0 when ``splits`` is 1).
    """
    array = np.asarray(logits.detach().cpu() if hasattr(logits, "detach") else logits, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] < 2:
        raise SemtokError(f"Inception Score: expected logits [N, C] with C >= 2, got shape {array.shape}")
    if isinstance(splits, bool) or not isinstance(splits, int | np.integer) or splits < 1:
        raise SemtokError(f"Inception Score: splits must be a positive integer, got {splits!r}")
    n = array.shape[0]
    if n < splits:
        raise SemtokError(
            f"Inception Score: {n} images cannot be cut into {splits} splits; expected N >= splits"
        )
    if not np.isfinite(array).all():
        raise SemtokError("Inception Score: logits contain NaN or inf")
    if shuffle:
        array = array[np.random.RandomState(seed).permutation(n)]
    shifted = array - array.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        part = slice(i * n // splits, (i + 1) * n // splits)
        p_part, log_p_part = p[part], log_p[part]
        log_marginal = np.log(p_part.mean(axis=0, keepdims=True))
        kl = (p_part * (log_p_part - log_marginal)).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def inception_score_report(logits: Any | None, splits: int = 10, reason: str | None = None) -> dict[str, Any]:
    """The Inception Score entries of an evaluation report.

    With logits [N, 1008] (from ``InceptionFeatures.features_and_logits`` / ``extract_with_logits``):
    ``{"inception_score": mean, "inception_score_std": std, "inception_score_protocol": IS_PROTOCOL}``.
    With ``logits=None``: ``{"inception_score_skipped": reason}`` (default reason: no weights file given) and no
    ``inception_score`` key at all, so nothing else is ever reported under that name.
    """
    if logits is None:
        return {"inception_score_skipped": reason or LOGITS_UNAVAILABLE}
    mean, std = inception_score_from_logits(logits, splits=splits)
    return {
        "inception_score": mean,
        "inception_score_std": std,
        "inception_score_protocol": IS_PROTOCOL
        if splits == 10
        else IS_PROTOCOL.replace("10 splits", f"{splits} splits"),
    }
