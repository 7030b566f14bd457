"""CLIP teachers from open_clip (vision tower only; the text tower is never built).

Features are the patch tokens after ``ln_post``, by default multiplied by the visual projection (the
paper's CLIP teacher: 512-d for ViT-B/16, 14x14 at 224 px); ``project=False`` gives the pre-projection
tokens (768-d for ViT-B/16, the Cluster tokenizer's encoder).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from semtok.errors import SemtokError
from semtok.teachers.base import (
    PRETRAINED,
    Teacher,
    WeightsChoice,
    assign_state_dict,
    hub_download,
    read_state_dict,
    seeded,
    tokens_to_map,
)

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def _visual_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The vision tower's tensors of a full CLIP checkpoint (open_clip or OpenAI layout) or of a teacher's
    own ``state_dict()``; a vision-tower-only state dict passes through."""
    for prefix in ("visual.", "module.visual.", "model.visual.", "model.", "clip.visual."):
        if any(key.startswith(prefix) for key in state):
            return {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
    return state


def _resize_positional_embedding(pos_embed_NC: torch.Tensor, tokens: int) -> torch.Tensor:
    """Resample ``[1 + g*g, C]`` (CLS first) to ``[tokens, C]`` bicubically on the patch grid."""
    if pos_embed_NC.shape[0] == tokens:
        return pos_embed_NC
    old_side = int(round((pos_embed_NC.shape[0] - 1) ** 0.5))
    new_side = int(round((tokens - 1) ** 0.5))
    cls_C, grid_NC = pos_embed_NC[:1], pos_embed_NC[1:]
    grid = grid_NC.reshape(1, old_side, old_side, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new_side, new_side), mode="bicubic", align_corners=False, antialias=True)
    return torch.cat([cls_C, grid.permute(0, 2, 3, 1).reshape(new_side * new_side, -1)], dim=0)


class OpenClipTeacher(Teacher):
    """An open_clip ViT vision tower (``model_name`` e.g. ``ViT-B-16``; ``tag`` names the pretrained
    weights, e.g. ``openai``, and decides QuickGELU and the input mean/std)."""

    def __init__(
        self,
        model_name: str = "ViT-B-16",
        tag: str = "openai",
        *,
        name: str | None = None,
        project: bool = True,
        input_size: int | None = None,
        weights: WeightsChoice = PRETRAINED,
    ) -> None:
        super().__init__()
        import open_clip
        from open_clip.model import _build_vision_tower

        self.name = name or f"open_clip {model_name} {tag}"
        weights.check(self.name)
        config = open_clip.get_model_config(model_name)
        if config is None:
            raise SemtokError(f"teacher {self.name!r}: open_clip has no model config {model_name!r}")
        pretrained_cfg = open_clip.get_pretrained_cfg(model_name, tag) or {}
        vision_cfg = dict(config["vision_cfg"])
        if input_size is not None:
            vision_cfg["image_size"] = int(input_size)
        quick_gelu = bool(config.get("quick_gelu", False) or pretrained_cfg.get("quick_gelu", False))

        def build(device: str | None) -> torch.nn.Module:
            with torch.device(device) if device else seeded(weights.seed):
                return _build_vision_tower(config["embed_dim"], vision_cfg, quick_gelu=quick_gelu)

        if weights.file is not None:
            self.weights_source = os.fspath(weights.file)
            visual = self._load(build("meta"), read_state_dict(weights.file, self.name), self.weights_source)
        elif weights.wants_default:
            with hub_download(self.name, f"open_clip {model_name} {tag}"):
                path = open_clip.download_pretrained(pretrained_cfg)
                if not path:
                    raise RuntimeError(f"open_clip has no pretrained tag {tag!r} for {model_name}")
            self.weights_source = f"hub: open_clip {model_name} {tag}"
            visual = self._load(build("meta"), read_state_dict(path, self.name), str(path))
        else:
            self.weights_source = weights.random_source
            visual = build(None)

        if not hasattr(visual, "conv1") or not hasattr(visual, "ln_post"):
            raise SemtokError(f"teacher {self.name!r}: only open_clip ViT vision towers are supported")
        self.visual = visual
        self.visual.output_tokens = True
        self.project = bool(project) and getattr(visual, "proj", None) is not None
        patch = visual.conv1.kernel_size[0]
        self.stride = int(patch)
        self.input_size = int(vision_cfg["image_size"])
        if self.input_size % self.stride:
            raise SemtokError(
                f"teacher {self.name!r}: input_size {self.input_size} is not a multiple of the patch size {patch}"
            )
        self.feature_dim = int(visual.proj.shape[1] if self.project else visual.conv1.out_channels)
        self.mean = tuple(float(v) for v in pretrained_cfg.get("mean", OPENAI_MEAN))
        self.std = tuple(float(v) for v in pretrained_cfg.get("std", OPENAI_STD))
        self.freeze()

    def _load(self, visual: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> torch.nn.Module:
        state = _visual_state(state)
        if "positional_embedding" in state:
            tokens = visual.positional_embedding.shape[0]
            state["positional_embedding"] = _resize_positional_embedding(
                state["positional_embedding"], tokens
            )
        assign_state_dict(visual, state, self.name, source)
        return visual

    def extract(self, pixels_B3HW: torch.Tensor) -> torch.Tensor:
        _, tokens_BNC = self.visual(pixels_B3HW)  # ln_post applied (tokens without CLS)
        if getattr(self.visual, "final_ln_after_pool", False):
            tokens_BNC = self.visual.ln_post(tokens_BNC)
        if self.project:
            tokens_BNC = tokens_BNC @ self.visual.proj
        return tokens_to_map(tokens_BNC, pixels_B3HW.shape[-1] // self.stride, self.name)
