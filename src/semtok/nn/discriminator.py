"""PatchGAN discriminator (its losses: :mod:`semtok.losses.gan`).

The discriminator normalises with GroupNorm, not BatchNorm: BatchNorm statistics differ between processes
under DDP unless converted to SyncBatchNorm, and they mix real and fake batches; GroupNorm has neither
problem and needs no conversion.
"""

from __future__ import annotations

import torch
from torch import nn

from semtok.errors import SemtokError
from semtok.nn.conv import group_norm


class PatchDiscriminator(nn.Module):
    """PatchGAN: images ``[B, in_channels, H, W]`` in [-1, 1] -> real/fake logits ``[B, 1, h', w']`` (fp32
    unless run under autocast).

    ``num_layers`` 4x4 stride-2 convolutions (widths ``channels * min(2**i, 8)``), one 4x4 stride-1
    convolution, then a 4x4 stride-1 convolution to one logit per patch; LeakyReLU(0.2) after every
    convolution but the last, GroupNorm after all but the first. For 256 px and ``num_layers=3`` the
    logits are 30x30 (each sees a 70x70 patch); for 32 px they are 2x2.
    """

    def __init__(self, in_channels: int = 3, channels: int = 64, num_layers: int = 3) -> None:
        super().__init__()
        if num_layers < 1 or channels < 1:
            raise SemtokError(
                f"discriminator needs num_layers >= 1, channels >= 1; got {num_layers}, {channels}"
            )
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels, 4, 2, 1), nn.LeakyReLU(0.2)]
        width = channels
        for i in range(1, num_layers + 1):
            stride = 2 if i < num_layers else 1
            out = channels * min(2**i, 8)
            layers += [nn.Conv2d(width, out, 4, stride, 1, bias=False), group_norm(out), nn.LeakyReLU(0.2)]
            width = out
        layers.append(nn.Conv2d(width, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """DCGAN initialisation: conv weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.GroupNorm):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, images_BCHW: torch.Tensor) -> torch.Tensor:
        return self.net(images_BCHW)
