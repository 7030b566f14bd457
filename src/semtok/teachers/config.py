"""The ``model.teacher`` config section that VQ-KD and Cluster share, and the one builder of its teacher.

model:
  teacher:
    name: effnet-lite0     # registry name (``semtok.teachers.TEACHERS``)
    weights: null          # a local weights file; null: the registry's default weights
    random_init: false     # the ablation control: same architecture, random (seeded) weights
    input_size: 128        # 0: the teacher's default
    stride: 16             # 0: the teacher's default (EfficientNet / ConvNeXt only)
    dim: 0                 # the teacher's feature dim: filled in from the teacher when a stage builds it
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from semtok.config import nest_flat_keys
from semtok.errors import SemtokError
from semtok.teachers.base import Teacher
from semtok.teachers.registry import build_teacher

PREFIX = "model.teacher."
LEGACY_KEYS = {  # flat model.* key of configs before the section -> its key in the section
    "teacher": "name",
    "teacher_weights": "weights",
    "teacher_random_init": "random_init",
    "teacher_input_size": "input_size",
    "teacher_stride": "stride",
    "teacher_dim": "dim",
}


@dataclass
class TeacherConfig:
    """Which frozen teacher a tokenizer reads features from, and how (see the module docstring)."""

    name: str = "clip-vit-b16"
    weights: str | None = None
    random_init: bool = False
    input_size: int = 0
    stride: int = 0
    dim: int = 0

    def __post_init__(self) -> None:
        for key in ("input_size", "stride", "dim"):
            if getattr(self, key) < 0:
                raise SemtokError(
                    f"config key '{PREFIX}{key}': expected an int >= 0, got {getattr(self, key)}"
                )


@dataclass
class ClusterTeacherConfig(TeacherConfig):
    """The Cluster tokenizer's teacher section: the paper's pre-projection CLIP patch tokens by default."""

    name: str = "clip-vit-b16-preproj"


def build_teacher_from_config(config: TeacherConfig, random_init: bool = False) -> Teacher:
    """The frozen teacher ``config`` names, at its input size and stride.

    ``config.random_init`` (the ablation control) or ``random_init=True`` (a loader whose saved tensors replace
    the weights, so no weights file or hub access is needed): the same architecture with random weights
    (seed 0); ``config.weights`` is then not read.
    """
    options: dict[str, Any] = {}
    if config.input_size:
        options["input_size"] = config.input_size
    if config.stride:
        options["stride"] = config.stride
    if random_init:
        return build_teacher(config.name, random_init=True, seed=0, **options)
    if config.random_init:
        if config.weights:
            raise SemtokError(f"config keys '{PREFIX}random_init' and '{PREFIX}weights' exclude each other")
        return build_teacher(config.name, random_init=True, seed=0, **options)
    return build_teacher(config.name, weights=config.weights, **options)


def build_resolved_teacher(config: TeacherConfig) -> tuple[Teacher, TeacherConfig]:
    """The teacher ``config`` names and a copy of ``config`` with ``dim`` set to its feature dim (the caller's
    object is left alone); a ``dim`` already set that the teacher does not give is an error."""
    teacher = build_teacher_from_config(config)
    if config.dim not in (0, teacher.feature_dim):
        raise SemtokError(
            f"config key '{PREFIX}dim' is {config.dim} but teacher '{config.name}' gives "
            f"{teacher.feature_dim}-d features"
        )
    return teacher, dataclasses.replace(config, dim=teacher.feature_dim)


def upgrade_legacy_teacher(raw: dict[str, Any], dim_key: str = "teacher_dim") -> dict[str, Any]:
    """A model config mapping with the flat ``teacher*`` keys (and ``dim_key``) of old folders moved into a
    ``teacher`` section; a mapping that already has the section is returned unchanged."""
    keys = {**LEGACY_KEYS, dim_key: "dim"}
    if dim_key != "teacher_dim":
        del keys["teacher_dim"]
    return nest_flat_keys(raw, "teacher", keys)
