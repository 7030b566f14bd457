"""Iterative parallel decoding (MaskGIT / MAGE) of token grids from a :class:`MaskedTransformer`, seeded.

All ``N`` tokens start masked. At step ``t`` of ``T`` the model predicts every position; a token is drawn at every
masked position (temperature, top-k, top-p: :func:`semtok.generators.sampling.sample_logits`); its log-probability,
plus Gumbel noise scaled by ``choice_temperature * (1 - (t + 1) / T)``, is its confidence; the
:func:`masked_counts` ``[t]`` least confident of the new tokens are masked again and the rest are kept for good. The
count falls by the schedule ``gamma((t + 1) / T)`` and is 0 after the last step, so no mask token is ever returned.

Guidance runs the conditional and the null-class rows as one batch of 2B and mixes their logits as
``u + s_t (c - u)``, with ``s_t = cfg_scale`` or, with ``cfg_ramp``, ``1 + (cfg_scale - 1) (t + 1) / T``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from semtok.errors import SemtokError
from semtok.generators.masked import MaskedTransformer
from semtok.generators.sampling import SamplingConfig, guided_condition, sample_logits

# progress r in [0, 1] -> the fraction of tokens still masked (1 at r = 0, 0 at r = 1).
MASK_SCHEDULES: dict[str, Callable[[float], float]] = {
    "cosine": lambda r: math.cos(math.pi / 2 * r),  # MaskGIT's default
    "arccos": lambda r: math.acos(min(max(r, 0.0), 1.0)) / (math.pi / 2),  # MAGE's
    "linear": lambda r: 1.0 - r,
}


def masked_counts(num_tokens: int, steps: int, schedule: str = "cosine") -> list[int]:
    """How many of ``num_tokens`` stay masked after each of ``steps`` decoding steps: ``floor(N * gamma((t+1)/T))``,
    non-increasing, below ``N`` after the first step, and exactly 0 after the last."""
    if steps < 1:
        raise SemtokError(f"masked decoding steps: expected >= 1, got {steps}")
    if schedule not in MASK_SCHEDULES:
        raise SemtokError(
            f"masked decoding schedule '{schedule}': expected one of {', '.join(MASK_SCHEDULES)}"
        )
    gamma = MASK_SCHEDULES[schedule]
    counts, previous = [], num_tokens
    for t in range(steps):
        count = 0 if t == steps - 1 else math.floor(num_tokens * gamma((t + 1) / steps))
        count = min(count, max(previous - 1, 0))  # every step reveals at least one token while any is masked
        counts.append(count)
        previous = count
    return counts


def gumbel_noise(shape: torch.Size, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    uniform = torch.rand(shape, generator=generator, device=device).clamp_(1e-20, 1.0 - 1e-7)
    return -torch.log(-torch.log(uniform))


@torch.inference_mode()
def generate_masked(
    model: MaskedTransformer,
    labels_B: torch.Tensor,
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    progress: bool = False,
    record: list[torch.Tensor] | None = None,
    text: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Sample token ids ``[B, seq_len]`` (int64 in ``[0, vocab_size)``, raster order) for class labels ``labels_B``
    (ints in ``[0, num_classes]``; ``num_classes`` is the null class) or, for a text model, ``text`` = (embeddings,
    mask) from its text encoder (``labels_B`` None), in ``sampling.steps`` parallel steps.

    The same ``seed``, labels and settings give the same ids. ``record``, a list, receives the grid after every step
    (``[B, seq_len]`` int64, ``-1`` where still masked): the masked-decoding picture.
    """
    sampling = sampling or SamplingConfig()
    config = model.config
    counts = masked_counts(config.seq_len, sampling.steps, sampling.schedule)
    device = model.class_embed.weight.device
    batch, guided, condition = guided_condition(config, labels_B, text, sampling.cfg_scale, device)
    length = config.seq_len
    generator = torch.Generator(device=device).manual_seed(seed)
    ids = torch.full((batch, length), config.mask_id, dtype=torch.long, device=device)
    for t in tqdm(range(sampling.steps), desc="sample", disable=not progress, leave=False):
        masked = ids == config.mask_id
        logits = model(ids.repeat(2, 1) if guided else ids, **condition)
        if guided:
            scale = sampling.cfg_scale
            if sampling.cfg_ramp:
                scale = 1.0 + (scale - 1.0) * (t + 1) / sampling.steps
            cond, uncond = logits[:batch], logits[batch:]
            logits = uncond + scale * (cond - uncond)
        flat = logits.reshape(batch * length, -1)
        drawn = sample_logits(flat, sampling.temperature, sampling.top_k, sampling.top_p, generator)
        drawn = torch.where(masked, drawn.view(batch, length), ids)
        confidence = flat.log_softmax(dim=-1).gather(-1, drawn.view(-1, 1)).view(batch, length)
        annealed = sampling.choice_temperature * (1.0 - (t + 1) / sampling.steps)
        if annealed > 0:
            confidence = confidence + annealed * gumbel_noise(confidence.shape, generator, device)
        confidence = confidence.masked_fill(~masked, float("inf"))  # decided tokens are never masked again
        remask = torch.zeros_like(masked)
        if counts[t] > 0:
            remask.scatter_(1, confidence.topk(counts[t], dim=1, largest=False).indices, True)
        ids = torch.where(remask, torch.full_like(ids, config.mask_id), drawn)
        if record is not None:
            record.append(torch.where(remask, torch.full_like(ids, -1), ids).cpu())
    if bool((ids == config.mask_id).any()):  # the schedule ends at 0 masked tokens: this cannot happen
        raise SemtokError("masked decoding left mask tokens in the output")
    return ids
