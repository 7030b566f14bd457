"""Teachers built from a timm model (ViTs, ConvNeXt): the shared set-up (name, ``timm_name``, the model and its
``weights_source`` from :func:`~semtok.teachers.base.create_timm_model`, the input mean / std of the model's
pretrained config)."""

from __future__ import annotations

from semtok.teachers.base import Teacher, WeightsChoice, create_timm_model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TimmTeacher(Teacher):
    """A teacher around the timm model ``timm_name`` (``self.model``), named ``name`` (default ``timm_name``).

    Sets ``name``, ``timm_name``, ``model``, ``weights_source`` and the input ``mean`` / ``std`` of the model's
    pretrained config (ImageNet's when it gives none); subclasses set ``stride``, ``input_size``,
    ``feature_dim``, implement ``extract`` and call ``freeze()``.
    """

    def __init__(
        self,
        timm_name: str,
        name: str | None,
        weights: WeightsChoice,
        **model_kwargs: object,
    ) -> None:
        super().__init__()
        self.name = name or timm_name
        self.timm_name = timm_name
        self.model, self.weights_source = create_timm_model(self.name, timm_name, weights, **model_kwargs)
        cfg = self.model.pretrained_cfg
        self.mean = tuple(float(v) for v in cfg.get("mean", IMAGENET_MEAN))
        self.std = tuple(float(v) for v in cfg.get("std", IMAGENET_STD))
