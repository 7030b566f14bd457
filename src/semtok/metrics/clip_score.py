"""CLIP score of images against their prompts (torchmetrics' ``CLIPScore``, the text-to-image literature's metric).

For image ``x`` and prompt ``t``: ``100 * max(cos(E_image(x), E_text(t)), 0)`` with an open_clip model's
projected embeddings; the literature reports its mean over a sample set. Images are resized to the model's
input size (shortest side, bicubic with antialiasing, centre crop: open_clip's own preprocessing) and normalised
with the model's mean / std. open_clip is imported only when a scorer is built.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from semtok.errors import SemtokError
from semtok.hub.files import load_state_checked
from semtok.metrics.pixel import to_uint8

__all__ = ["ClipScorer"]

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _reason(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:200]}" if text else type(error).__name__


class ClipScorer:
    """CLIP score with open_clip ``model_name`` (e.g. ``ViT-B-16``; for OpenAI's weights as a local file use
    the ``-quickgelu`` variant of the name, e.g. ``ViT-B-16-quickgelu``, which their activations need).

    Weights, exactly one of:
    - ``weights``: a local file (``.safetensors``, or a torch state dict read with ``weights_only=True``) in
      open_clip's layout (e.g. a hub ``open_clip_model.safetensors``); it must fit the architecture exactly;
    - ``random_init=True``: random weights seeded with ``seed`` (tests and plumbing only: the scores mean nothing);
    - neither: open_clip downloads its ``tag`` weights (default ``openai``; needs the network or its cache), with
      QuickGELU when the tag's weights need it.
    ``device``: where the model runs (default CPU); scores always come back on the CPU.
    """

    def __init__(
        self,
        model_name: str = "ViT-B-16",
        weights: str | os.PathLike | None = None,
        random_init: bool = False,
        *,
        tag: str = "openai",
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> None:
        import open_clip

        if model_name not in open_clip.list_models():
            raise SemtokError(f"CLIP score: open_clip has no model {model_name!r}")
        if weights is not None and random_init:
            raise SemtokError("CLIP score: give either a weights file or random_init=True, not both")
        self.model_name = model_name
        if weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise SemtokError(f"CLIP score: weights file '{path}' does not exist")
            model = self._random_model(open_clip, model_name, seed)
            self._load_file(open_clip, model, path)
            self.weights_source = str(path)
        elif random_init:
            model = self._random_model(open_clip, model_name, seed)
            self.weights_source = f"random (seed {seed})"
        else:
            # QuickGELU where the tag's weights were trained with it (OpenAI's): open_clip only warns otherwise
            quick_gelu = bool((open_clip.get_pretrained_cfg(model_name, tag) or {}).get("quick_gelu", False))
            try:
                model = open_clip.create_model(model_name, pretrained=tag, force_quick_gelu=quick_gelu)
            except Exception as error:  # noqa: BLE001 - any download / tag failure is one message for the user
                raise SemtokError(
                    f"CLIP score: could not get open_clip {model_name} weights {tag!r} ({_reason(error)}); "
                    "give a local weights file"
                ) from None
            self.weights_source = f"open_clip {model_name} {tag}"
        self.model = model.to(device or "cpu").eval().requires_grad_(False)
        self.tokenizer = open_clip.get_tokenizer(model_name)
        size = self.model.visual.image_size
        self.input_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        preprocess: dict[str, Any] = getattr(self.model.visual, "preprocess_cfg", None) or {}
        self.mean = tuple(float(v) for v in preprocess.get("mean", OPENAI_MEAN))
        self.std = tuple(float(v) for v in preprocess.get("std", OPENAI_STD))

    @staticmethod
    def _random_model(open_clip: Any, model_name: str, seed: int) -> torch.nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return open_clip.create_model(model_name, pretrained=None)

    def _load_file(self, open_clip: Any, model: torch.nn.Module, path: Path) -> None:
        from open_clip.factory import load_state_dict

        try:
            state = load_state_dict(str(path), device="cpu", weights_only=True)
        except Exception as error:  # noqa: BLE001 - any reader failure is a bad file for the user
            raise SemtokError(
                f"CLIP score: could not read weights file '{path}' as safetensors or a weights-only torch "
                f"state dict ({_reason(error)})"
            ) from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise SemtokError(f"CLIP score: weights file '{path}' holds no state dict of tensors")
        scale = state.get("logit_scale")
        if scale is not None and scale.numel() == 1:  # stored as a scalar or as [1]
            state["logit_scale"] = scale.reshape(model.logit_scale.shape)
        load_state_checked(
            model, state, f"CLIP score: weights file '{path}' does not fit open_clip {self.model_name}"
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def preprocess(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` (float in [-1, 1], quantised to uint8 first, or uint8) -> the model's input:
        float32 ``[B, 3, S, S]`` normalised with its mean / std (shortest side resized to ``S``, bicubic +
        antialias, clamped to [0, 1], centre crop)."""
        images = to_uint8(images_B3HW).to(self.device, torch.float32) / 255
        height, width = images.shape[-2:]
        side = self.input_size
        scale = side / min(height, width)
        new_hw = (max(side, round(height * scale)), max(side, round(width * scale)))
        if new_hw != (height, width):
            images = F.interpolate(images, size=new_hw, mode="bicubic", antialias=True, align_corners=False)
            images = images.clamp(0, 1)
        top, left = (new_hw[0] - side) // 2, (new_hw[1] - side) // 2
        images = images[..., top : top + side, left : left + side]
        mean = torch.tensor(self.mean, device=images.device)[:, None, None]
        std = torch.tensor(self.std, device=images.device)[:, None, None]
        return (images - mean) / std

    @torch.no_grad()
    def embeddings(self, images_B3HW: torch.Tensor, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised float32 ``(image embeddings [B, D], text embeddings [B, D])`` on the CPU."""
        image = self.model.encode_image(self.preprocess(images_B3HW)).float()
        text = self.model.encode_text(self.tokenizer(list(prompts)).to(self.device)).float()
        return F.normalize(image, dim=-1).cpu(), F.normalize(text, dim=-1).cpu()

    def score(self, images_B3HW: torch.Tensor, prompts: list[str], batch_size: int = 32) -> torch.Tensor:
        """CLIP score float32 ``[B]`` in [0, 100] (on the CPU) of images ``[B, 3, H, W]`` (float in [-1, 1] or
        uint8), each
        against its prompt ``prompts[i]``; ``batch_size`` images per forward pass. Average it for the metric."""
        if not isinstance(images_B3HW, torch.Tensor) or not (
            images_B3HW.is_floating_point() or images_B3HW.dtype == torch.uint8
        ):
            raise SemtokError("CLIP score: expected images [B, 3, H, W], float in [-1, 1] or uint8")
        if images_B3HW.dim() != 4 or images_B3HW.shape[1] != 3:
            raise SemtokError(
                f"CLIP score: expected images [B, 3, H, W], got shape {tuple(images_B3HW.shape)}"
            )
        if isinstance(prompts, str) or not all(isinstance(p, str) for p in prompts):
            raise SemtokError("CLIP score: expected prompts as a list of strings, one per image")
        if len(prompts) != images_B3HW.shape[0]:
            raise SemtokError(
                f"CLIP score: {images_B3HW.shape[0]} images but {len(prompts)} prompts; expected one prompt each"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise SemtokError(f"CLIP score: batch_size: expected an int >= 1, got {batch_size!r}")
        scores = []
        for start in range(0, len(prompts), batch_size):
            image, text = self.embeddings(
                images_B3HW[start : start + batch_size], prompts[start : start + batch_size]
            )
            scores.append(100 * (image * text).sum(dim=-1).clamp_min(0))
        return torch.cat(scores) if scores else torch.zeros(0)
