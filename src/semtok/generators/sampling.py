"""Sampling token grids from an :class:`~semtok.generators.ar.ARTransformer`: KV cache, batched, temperature,
top-k, top-p and classifier-free guidance, seeded.

Guidance runs the conditional and the unconditional (null-class) sequences as one batch of 2B and mixes their
logits as ``u + s * (c - u)`` before temperature and filtering; both halves then take the same sampled token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from semtok.errors import SemtokError
from semtok.generators.ar import ARConfig, ARTransformer

MASK_SCHEDULE_NAMES = ("cosine", "arccos", "linear")  # see semtok.generators.masked_sampling.MASK_SCHEDULES


@dataclass
class SamplingConfig:
    """How tokens are drawn, by either family of proposal network. ``top_k`` 0 and ``top_p`` 1.0 switch those
    filters off; ``temperature`` 0 is greedy; ``cfg_scale`` 1.0 is no guidance. Defaults are the paper's (T 1.0,
    top-k 600, top-p 0.92, CFG 1.75). ``use_cache``: AR models only.

    Masked models only: ``steps`` parallel decoding steps (12, the paper's MAGE setting), the ``schedule`` of the
    masked fraction (cosine | arccos | linear), the Gumbel ``choice_temperature`` on the confidences (4.5, MaskGIT's;
    annealed to 0 over the steps) and ``cfg_ramp`` (the guidance scale grows linearly from 1 to ``cfg_scale``).
    """

    temperature: float = 1.0
    top_k: int = 600
    top_p: float = 0.92
    cfg_scale: float = 1.75
    use_cache: bool = True
    steps: int = 12
    schedule: str = "cosine"
    choice_temperature: float = 4.5
    cfg_ramp: bool = False

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise SemtokError(f"sampling temperature: expected >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise SemtokError(f"sampling top_k: expected >= 0 (0 = off), got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise SemtokError(f"sampling top_p: expected a value in (0, 1], got {self.top_p}")
        if self.cfg_scale < 0:
            raise SemtokError(f"sampling cfg_scale: expected >= 0, got {self.cfg_scale}")
        if self.steps < 1:
            raise SemtokError(f"sampling steps: expected >= 1, got {self.steps}")
        if self.schedule not in MASK_SCHEDULE_NAMES:
            raise SemtokError(
                f"sampling schedule '{self.schedule}': expected one of {', '.join(MASK_SCHEDULE_NAMES)}"
            )
        if self.choice_temperature < 0:
            raise SemtokError(f"sampling choice_temperature: expected >= 0, got {self.choice_temperature}")


def check_labels(labels_B: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``labels_B`` as a 1-D int64 tensor, checked to lie in ``[0, num_classes]`` (``num_classes``: the null class)."""
    labels_B = torch.as_tensor(labels_B, dtype=torch.long)
    if labels_B.dim() != 1 or labels_B.numel() == 0:
        raise SemtokError(
            f"generate: expected a non-empty 1-D tensor of labels, got shape {tuple(labels_B.shape)}"
        )
    if int(labels_B.min()) < 0 or int(labels_B.max()) > num_classes:
        raise SemtokError(
            f"class labels: expected values in [0, {num_classes - 1}] (or {num_classes} = unconditional), "
            f"got {labels_B.tolist()[:8]}"
        )
    return labels_B


def sample_logits(
    logits_BV: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one id per row of ``logits_BV`` (float): temperature, then top-k, then top-p (nucleus); ids [B] int64.

    Top-p keeps the smallest set of most likely tokens whose probability reaches ``top_p`` (the most likely one is
    always kept). Only the top-k candidates are sorted, so the cost does not grow with the vocabulary.
    """
    if temperature == 0:
        return logits_BV.argmax(dim=-1)
    logits_BV = logits_BV / temperature
    vocab = logits_BV.shape[-1]
    if 0 < top_k < vocab:
        values, indices = logits_BV.topk(top_k, dim=-1)  # sorted, largest first
    elif top_p < 1.0:
        values, indices = logits_BV.sort(dim=-1, descending=True)
    else:
        probs = logits_BV.softmax(dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    if top_p < 1.0:
        probs = values.softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # probability mass of the more likely candidates
        values = values.masked_fill(before >= top_p, float("-inf"))
    choice = torch.multinomial(values.softmax(dim=-1), 1, generator=generator)
    return indices.gather(-1, choice).squeeze(-1)


def guided_condition(
    config: ARConfig,
    labels_B: torch.Tensor | None,
    text: tuple[torch.Tensor, torch.Tensor] | None,
    cfg_scale: float,
    device: torch.device,
) -> tuple[int, bool, dict[str, Any]]:
    """(batch, guided, the condition keywords of the model's ``forward`` / ``prefix``) for class labels or a text
    (embeddings [B, L, text_dim], mask [B, L]). Guided: the rows are doubled, the second half unconditional (the null
    class, or the null text prefix)."""
    if config.text_dim:
        if text is None:
            raise SemtokError("this model is text-conditional: give a prompt, not class labels")
        embeddings, mask = text[0].to(device), text[1].to(device)
        batch = embeddings.shape[0]
        dropped = torch.zeros(batch, dtype=torch.bool, device=device)
        if cfg_scale != 1.0:
            embeddings, mask = embeddings.repeat(2, 1, 1), mask.repeat(2, 1)
            dropped = torch.cat([dropped, torch.ones_like(dropped)])
        return batch, cfg_scale != 1.0, {"text": (embeddings, mask), "dropped_B": dropped}
    if text is not None:
        raise SemtokError("this model is class-conditional: give class labels, not a prompt")
    labels_B = check_labels(labels_B, config.num_classes).to(device)
    guided = cfg_scale != 1.0 and config.num_classes > 0
    run_labels = torch.cat([labels_B, torch.full_like(labels_B, config.null_class)]) if guided else labels_B
    return labels_B.shape[0], guided, {"labels_B": run_labels}


@torch.inference_mode()
def generate(
    model: ARTransformer,
    labels_B: torch.Tensor | None,
    sampling: SamplingConfig | None = None,
    seed: int = 0,
    progress: bool = False,
    text: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Sample token ids ``[B, seq_len]`` (int64, raster order) for class labels ``labels_B`` (ints in
    ``[0, num_classes]``; ``num_classes`` is the null class, i.e. unconditional) or, for a text model, ``text`` =
    (embeddings [B, L, text_dim], mask [B, L]) from its text encoder (``labels_B`` None).

    The same ``seed``, condition and settings give the same ids. ``sampling.use_cache`` False recomputes the whole
    prefix at every step (the reference path, for speed comparisons and tests).
    """
    sampling = sampling or SamplingConfig()
    config = model.config
    device = model.token_embed.weight.device
    batch, guided, condition = guided_condition(config, labels_B, text, sampling.cfg_scale, device)
    generator = torch.Generator(device=device).manual_seed(seed)
    ids = torch.empty(batch, config.seq_len, dtype=torch.long, device=device)
    inputs = model.prefix(**condition)
    prefix_len = inputs.shape[1]
    cache = model.new_cache(inputs.shape[0]) if sampling.use_cache else None
    for t in tqdm(range(config.seq_len), desc="sample", disable=not progress, leave=False):
        if cache is not None:
            logits = model.step(inputs, cache, 0 if t == 0 else prefix_len + t - 1)
        else:
            known = ids[:, :t].repeat(2, 1) if guided else ids[:, :t]
            dummy = torch.zeros_like(known[:, :1])  # forward() drops the last input token
            logits = model(torch.cat([known, dummy], dim=1), **condition)[:, -1]
        if guided:
            cond, uncond = logits[:batch], logits[batch:]
            logits = uncond + sampling.cfg_scale * (cond - uncond)
        token = sample_logits(logits, sampling.temperature, sampling.top_k, sampling.top_p, generator)
        ids[:, t] = token
        if cache is not None:
            inputs = model.token_embed(token.repeat(2) if guided else token)[:, None]
    return ids
