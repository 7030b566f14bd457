"""The NAR stage: a class- or text-conditional masked proposal network (MaskGIT / MAGE) trained on a token file.

Each sample gets its own masking ratio ``r`` from ``masking.schedule``: ``maskgit``, ``r = cos(pi/2 * u)`` with
``u ~ U(0, 1)`` (MaskGIT); ``mage``, a Gaussian of mean 0.55 and sd 0.25 truncated to [0.5, 1.0] (MAGE). ``ceil(r *
N)`` positions (at least one) chosen uniformly are replaced by the mask token; the loss is the cross-entropy on those
positions only, with ``masking.label_smoothing`` (MaskGIT: 0.1). All randomness comes from the global torch RNG,
which the engine checkpoints, so a resumed run is the uninterrupted one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from semtok.data.token_file import TokenDataset
from semtok.errors import SemtokError
from semtok.generators.masked import MaskedConfig, MaskedTransformer
from semtok.losses.next_token import masked_token_loss
from semtok.training.ar import ARDataConfig, ARStage, condition_of, token_batches
from semtok.training.captions import CaptionCondition
from semtok.training.config import TrainConfig
from semtok.training.engine import Engine


@dataclass
class MaskingConfig:
    """How training masks the token grid (see the module docstring)."""

    schedule: str = "maskgit"  # maskgit (cosine of a uniform) | mage (truncated Gaussian)
    mage_mean: float = 0.55
    mage_std: float = 0.25
    mage_min: float = 0.5
    mage_max: float = 1.0
    label_smoothing: float = 0.1

    def __post_init__(self) -> None:
        if self.schedule not in ("maskgit", "mage"):
            raise SemtokError(
                f"config key 'masking.schedule': expected maskgit or mage, got {self.schedule!r}"
            )
        if not 0.0 <= self.mage_min < self.mage_max <= 1.0 or self.mage_std <= 0:
            raise SemtokError(
                "config keys 'masking.mage_*': expected 0 <= mage_min < mage_max <= 1 and mage_std > 0"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise SemtokError(
                f"config key 'masking.label_smoothing': expected [0, 1), got {self.label_smoothing}"
            )


@dataclass
class NARRunConfig:
    model: MaskedConfig = field(default_factory=MaskedConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: ARDataConfig = field(default_factory=ARDataConfig)


def mask_ratios(batch: int, masking: MaskingConfig, device: torch.device) -> torch.Tensor:
    """Per-sample masking ratios [B] float32 in (0, 1] drawn from ``masking.schedule`` (global torch RNG)."""
    if masking.schedule == "maskgit":
        return torch.cos(math.pi / 2 * torch.rand(batch, device=device)).clamp_min(1e-6)
    normal = torch.distributions.Normal(masking.mage_mean, masking.mage_std)
    low, high = (normal.cdf(torch.tensor(v)) for v in (masking.mage_min, masking.mage_max))
    uniform = low + (high - low) * torch.rand(batch, device=device)  # inverse-CDF truncated Gaussian
    ratios = masking.mage_mean + masking.mage_std * math.sqrt(2) * torch.erfinv(2 * uniform - 1)
    return ratios.clamp(masking.mage_min, masking.mage_max).clamp_min(1e-6)


def random_mask(ids_BN: torch.Tensor, ratios_B: torch.Tensor) -> torch.Tensor:
    """Bool [B, N]: ``ceil(r * N)`` (at least 1) uniformly chosen positions per row are True (global torch RNG)."""
    batch, length = ids_BN.shape
    counts = (ratios_B * length).ceil().clamp(1, length).long()
    ranks = torch.rand(batch, length, device=ids_BN.device).argsort(dim=1).argsort(dim=1)
    return ranks < counts[:, None]


@torch.no_grad()
def masked_nll(
    model: MaskedTransformer,
    dataset: TokenDataset,
    masking: MaskingConfig,
    batch_size: int,
    seed: int = 0,
    captions: CaptionCondition | None = None,
) -> float:
    """Mean cross-entropy (nats per masked token, no smoothing) of a token set under masks drawn with ``seed``; a
    text model is given each row's first caption (``captions`` of ``dataset``)."""
    device = model.class_embed.weight.device
    generator = torch.Generator().manual_seed(seed)
    state = torch.get_rng_state()
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    total, count = 0.0, 0
    model.eval()
    try:
        for ids, labels, rows in token_batches(dataset, batch_size, device):
            masked = random_mask(ids, mask_ratios(ids.shape[0], masking, device))
            inputs = ids.masked_fill(masked, model.config.mask_id)
            condition = condition_of(labels, rows, captions, device)
            loss = masked_token_loss(model(inputs, **condition), ids, masked)
            total += float(loss) * int(masked.sum())
            count += int(masked.sum())
    finally:
        torch.set_rng_state(state)
    return total / max(count, 1)


class NARStage(ARStage):
    """The AR stage's data, model set-up and provenance, with the masked model, loss and val score."""

    config_class = NARRunConfig
    folder = "nar"
    model_class = MaskedTransformer
    train_loss_key = "loss/train_masked_ce"

    def step(self, batch: tuple[torch.Tensor, ...], engine: Engine) -> dict[str, Any]:
        ids = batch[0].to(engine.device)
        model, masking = self.config.model, self.config.masking
        condition = self.train_condition(batch, engine)
        masked = random_mask(ids, mask_ratios(ids.shape[0], masking, ids.device))
        inputs = ids.masked_fill(masked, model.mask_id)
        with engine.accelerator.autocast():
            logits = engine.modules["model"](inputs, **condition)
        loss = masked_token_loss(logits.float(), ids, masked, masking.label_smoothing)
        engine.optimize("model", loss)
        return {"loss/train_masked_ce": loss.detach(), "mask_ratio": masked.float().mean()}

    def val_fields(self, engine: Engine) -> dict[str, Any]:
        nll = masked_nll(
            self.model,
            self.val_set,
            self.config.masking,
            self.config.train.batch_size,
            captions=self.val_captions,
        )
        engine.log(engine.step_index, {"loss/val_masked_nll": nll})
        return {"val_masked_nll": nll}

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        val = f", val masked NLL {summary['val_masked_nll']:.4f}" if "val_masked_nll" in summary else ""
        return [f"masked model: {summary['nar']} ({summary['parameters']:,} parameters{val})"]
