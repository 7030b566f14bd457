"""The pixel-reconstruction loss of VQGAN-style training: reconstruction + perceptual + GAN, owning its
PatchGAN discriminator.

Generator side: ``rec (L1 or MSE) + perceptual_weight * perceptual + quantizer loss + w * hinge_g`` with the GAN
term from ``disc_start`` on, ``w`` either ``gan_weight`` or VQGAN's adaptive weight. Discriminator side: the
hinge loss on real images and detached reconstructions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from semtok.errors import SemtokError
from semtok.losses.gan import adaptive_gan_weight, hinge_d_loss, hinge_g_loss
from semtok.losses.perceptual import build_perceptual_loss
from semtok.nn.discriminator import PatchDiscriminator


@dataclass
class PixelLossConfig:
    """Reconstruction + perceptual + GAN. ``perceptual``: auto (LPIPS if its weights are present, else a
    perceptual loss on the offline EfficientNet-Lite0 teacher) | lpips | teacher | none."""

    reconstruction: str = "l1"  # l1 | mse
    perceptual: str = "auto"
    perceptual_weight: float = 1.0
    perceptual_size: int = 128  # the teacher perceptual loss reads images upsampled to at least this side
    lpips_weights: str | None = None
    gan_weight: float = 0.5
    adaptive_gan_weight: bool = False  # VQGAN's ||grad rec|| / ||grad gan|| at the last decoder layer
    disc_start: int = 20000
    disc_lr: float = 1e-4
    disc_channels: int = 64
    disc_layers: int = 3

    def __post_init__(self) -> None:
        if self.reconstruction not in ("l1", "mse"):
            raise SemtokError(
                f"config key 'loss.reconstruction': expected l1 or mse, got {self.reconstruction!r}"
            )
        if self.perceptual not in ("auto", "lpips", "teacher", "none"):
            raise SemtokError(
                f"config key 'loss.perceptual': expected auto, lpips, teacher or none, got {self.perceptual!r}"
            )


class PixelLoss(nn.Module):
    """``generator_loss`` and ``discriminator_loss`` of images in [-1, 1]; ``discriminator`` is the trained
    PatchGAN (its optimizer is the caller's), the perceptual network is frozen. ``perceptual_name`` says which
    perceptual loss is used (``"none"``, ``"lpips-vgg"``, ``"effnet-lite0-perceptual (...)"``)."""

    def __init__(self, config: PixelLossConfig) -> None:
        super().__init__()
        self.config = config
        self.discriminator = PatchDiscriminator(3, config.disc_channels, config.disc_layers)
        self.perceptual: nn.Module | None = None
        self.perceptual_name = "none"
        if config.perceptual != "none" and config.perceptual_weight > 0:
            self.perceptual, self.perceptual_name = build_perceptual_loss(
                config.perceptual, config.lpips_weights, config.perceptual_size
            )

    def gan_on(self, step: int) -> bool:
        return step >= self.config.disc_start and self.config.gan_weight > 0

    def generator_loss(
        self,
        recon_B3HW: torch.Tensor,
        images_B3HW: torch.Tensor,
        quantizer_loss: torch.Tensor,
        step: int,
        last_layer: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(0-d fp32 loss, its parts). The discriminator is read with detached weights, so this loss gives
        it no gradient (its own loss does); gradients reach ``recon_B3HW``."""
        config = self.config
        recon = recon_B3HW.float()
        if config.reconstruction == "l1":
            rec = F.l1_loss(recon, images_B3HW)
        else:
            rec = F.mse_loss(recon, images_B3HW)
        perc = self.perceptual(recon, images_B3HW) if self.perceptual is not None else recon.new_zeros(())
        nll = rec + config.perceptual_weight * perc
        loss = nll + quantizer_loss
        gan_weight = torch.zeros(())
        g_loss = recon.new_zeros(())
        if self.gan_on(step):
            weights = {name: p.detach() for name, p in self.discriminator.named_parameters()}
            g_loss = hinge_g_loss(functional_call(self.discriminator, weights, (recon,)))
            gan_weight = (
                adaptive_gan_weight(nll, g_loss, last_layer) * config.gan_weight
                if config.adaptive_gan_weight
                else torch.tensor(config.gan_weight)
            )
            loss = loss + gan_weight.to(loss.device) * g_loss
        parts = {"reconstruction": rec, "perceptual": perc, "gan_generator": g_loss, "gan_weight": gan_weight}
        return loss, parts

    def discriminator_loss(
        self, discriminator: nn.Module, images_B3HW: torch.Tensor, recon_B3HW: torch.Tensor
    ) -> torch.Tensor:
        """Hinge loss of ``discriminator`` (this loss's discriminator, as prepared for training) on real
        images and detached reconstructions: 0-d fp32."""
        return hinge_d_loss(discriminator(images_B3HW), discriminator(recon_B3HW.detach().float()))
