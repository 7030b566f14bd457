"""Every training stage by name: what the CLI builds `semtok train STAGE` from, and what :func:`train` runs.

An entry names the stage's module and class (imported only when used, so the CLI starts without torch), its
default config, what the CLI says about it and which inputs it takes. A new stage costs one short module with
a :class:`~semtok.training.engine.Stage` subclass, plus an entry here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from semtok.errors import SemtokError


@dataclass(frozen=True)
class Option:
    """A stage-specific CLI flag that sets a config key (``required``: the stage cannot run without it)."""

    flag: str
    key: str
    help: str
    required: bool = False


@dataclass(frozen=True)
class StageSpec:
    module: str
    cls: str
    default_config: str
    help: str
    inputs: str = "images"  # images (--data) | tokens (the stage reads token files)
    teacher: bool = False  # takes --teacher / --teacher-weights
    options: tuple[Option, ...] = ()

    def load(self) -> type:
        return getattr(importlib.import_module(self.module), self.cls)


_PIXEL = "semtok.training.pixel"
# A text model: the token file's captions encoded by a frozen text encoder (semtok.training.captions).
TEXT_OPTIONS = (
    Option(
        "--text-encoder", "model.text_encoder", "text encoder (minilm-l6, clip-text-b16, t5): a text model"
    ),
    Option("--text-encoder-weights", "model.text_encoder_weights", "its local weights / hub name"),
)

STAGES: dict[str, StageSpec] = {
    "vqkd": StageSpec(
        "semtok.training.vqkd",
        "VQKDStage",
        "vqkd-mnist",
        "distil a VQ-KD tokenizer from a teacher",
        teacher=True,
    ),
    "cluster": StageSpec(
        "semtok.training.cluster_online",
        "ClusterOnlineStage",
        "cluster-online-mnist",
        "learn a Cluster codebook online for a frozen teacher (offline: `build cluster`)",
        teacher=True,
    ),
    "vqgan": StageSpec(
        _PIXEL, "PixelStage", "vqgan-mnist", "VQGAN baseline (L2 codebook, L1 + perceptual + adaptive GAN)"
    ),
    "cvq": StageSpec(
        _PIXEL,
        "PixelStage",
        "cvq-mnist",
        "CVQ-VAE baseline (cosine codebook, re-seeding of rarely used codes)",
    ),
    "fsq": StageSpec(_PIXEL, "PixelStage", "fsq-mnist", "FSQ baseline (finite scalar quantization)"),
    "decoder": StageSpec(
        _PIXEL,
        "PixelStage",
        "decoder-vqkd-mnist",
        "train a pixel decoder for a frozen VQ-KD / Cluster tokenizer",
        options=(
            Option(
                "--tokenizer", "tokenizer", "the feature tokenizer: a run folder or tokenizer folder", True
            ),
        ),
    ),
    "judge": StageSpec(
        "semtok.training.judge",
        "JudgeStage",
        "judge-mnist",
        "train the judge: a classifier of the data set's classes that scores generated samples",
    ),
    "ar": StageSpec(
        "semtok.training.ar",
        "ARStage",
        "ar-mnist",
        "train a class- or text-conditional AR proposal network on a token file",
        inputs="tokens",
        options=(
            Option("--tokens", "data.tokens", "train token file from `semtok tokenize`", required=True),
            Option("--val-tokens", "data.val_tokens", "val token file: val NLL at the end"),
            *TEXT_OPTIONS,
        ),
    ),
    "nar": StageSpec(
        "semtok.training.nar",
        "NARStage",
        "nar-mnist",
        "train a class- or text-conditional masked (MaskGIT / MAGE) proposal network on a token file",
        inputs="tokens",
        options=(
            Option("--tokens", "data.tokens", "train token file from `semtok tokenize`", required=True),
            Option("--val-tokens", "data.val_tokens", "val token file: val masked NLL at the end"),
            *TEXT_OPTIONS,
        ),
    ),
}


def stage_spec(name: str) -> StageSpec:
    if name not in STAGES:
        raise SemtokError(f"unknown training stage '{name}' (known: {', '.join(STAGES)})")
    return STAGES[name]


def config_class(name: str) -> type:
    """The run-config dataclass of stage ``name``."""
    stage = stage_spec(name).load()
    configs = getattr(stage, "config_classes", None)
    return configs[name] if configs else stage.config_class


def build_stage(name: str, config: Any) -> Any:
    """Stage ``name`` over ``config`` (an instance of :func:`config_class`)."""
    return stage_spec(name).load()(config, name)
