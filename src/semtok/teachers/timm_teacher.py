"""Teachers built from a timm model (ViTs, ConvNeXt): building the model with its weights, and the shared
set-up (name, ``timm_name``, ``weights_source``, the input mean / std of the model's pretrained config)."""

from __future__ import annotations

import os

import torch
from torch import nn

from semtok.errors import SemtokError
from semtok.teachers.base import (
    PRETRAINED,
    Teacher,
    WeightsChoice,
    assign_state_dict,
    hub_download,
    read_state_dict,
    seeded,
    strip_to_match,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def create_timm_model(
    teacher: str, timm_name: str, weights: WeightsChoice, **model_kwargs: object
) -> tuple[nn.Module, str]:
    """Build a timm model for ``teacher``; returns ``(model, weights_source)``.

    ``weights.file`` (a local file) wins; else ``weights.pretrained`` downloads ``timm_name``'s weights from
    the hub; else (or with ``random_init``) the model is randomly initialised under ``weights.seed``. A local
    file may be a timm state dict, an original-format checkpoint that timm's own ``checkpoint_filter_fn``
    converts (DINO, DINOv2, MAE, OpenCLIP-timm, FB ConvNeXt), or a teacher's own ``state_dict()``; position
    embeddings are resampled to the model's grid.
    """
    import sys

    import timm

    weights.check(teacher)
    if weights.file is not None:
        source = os.fspath(weights.file)
        state = read_state_dict(source, teacher)
        with torch.device("meta"):
            model = timm.create_model(timm_name, pretrained=False, **model_kwargs)
        expected = set(model.state_dict())
        state = strip_to_match(state, expected, ("model.", "backbone.", "encoder.", "module.", "teacher."))
        filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
        if filter_fn is not None:
            try:
                state = filter_fn(state, model)
            except Exception as error:  # noqa: BLE001 - a foreign checkpoint timm cannot convert
                raise SemtokError(
                    f"teacher {teacher!r}: weights file {source} is not a {timm_name} checkpoint "
                    f"({type(error).__name__}: {str(error)[:160]})"
                ) from None
        assign_state_dict(model, state, teacher, source)
        return model, source
    if weights.wants_default:
        with hub_download(teacher, f"timm {timm_name}"):
            model = timm.create_model(timm_name, pretrained=True, **model_kwargs)
        return model, f"hub: timm {timm_name}"
    with seeded(weights.seed):
        model = timm.create_model(timm_name, pretrained=False, **model_kwargs)
    return model, weights.random_source


class TimmTeacher(Teacher):
    """A teacher around the timm model ``timm_name`` (``self.model``), named ``name`` (default ``timm_name``).

    Sets ``name``, ``timm_name``, ``model``, ``weights_source`` and the input ``mean`` / ``std`` of the model's
    pretrained config (ImageNet's when it gives none); subclasses set ``stride``, ``input_size``,
    ``feature_dim``, implement ``extract`` and call ``freeze()``.
    """

    def __init__(
        self,
        timm_name: str,
        name: str | None = None,
        weights: WeightsChoice = PRETRAINED,
        **model_kwargs: object,
    ) -> None:
        super().__init__()
        self.name = name or timm_name
        self.timm_name = timm_name
        self.model, self.weights_source = create_timm_model(self.name, timm_name, weights, **model_kwargs)
        cfg = self.model.pretrained_cfg
        self.mean = tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN))
        self.std = tuple(float(v) for v in cfg.get("std", IMAGENET_STD))
