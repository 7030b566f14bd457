"""GAN losses of VQGAN-style training: hinge losses and the adaptive generator weight."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss ``0.5 * (mean(relu(1 - real)) + mean(relu(1 + fake)))``: 0-d fp32, >= 0."""
    real = F.relu(1.0 - logits_real.float()).mean()
    fake = F.relu(1.0 + logits_fake.float()).mean()
    return 0.5 * (real + fake)


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss ``-mean(logits_fake)``: 0-d fp32."""
    return -logits_fake.float().mean()


def adaptive_gan_weight(
    rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor, max_weight: float = 1e4
) -> torch.Tensor:
    """VQGAN's balance of the GAN term: ``||d rec / d W|| / (||d g / d W|| + 1e-4)``, clamped to
    ``[0, max_weight]`` and detached (``W`` = ``last_layer``, the decoder's final weight).

    Both losses must depend on ``last_layer``; their graphs are kept (``retain_graph``) for the real
    backward pass. Returns a 0-d fp32 tensor without grad. Under DDP the gradients are this process's
    own (no all-reduce), as in VQGAN.
    """
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    weight = rec_grad.float().norm() / (g_grad.float().norm() + 1e-4)
    return weight.clamp(0.0, max_weight).detach()
