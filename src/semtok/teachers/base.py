"""The teacher interface: a frozen image-understanding model that gives patch features.

Also the shared plumbing every teacher uses: which weights to load (``WeightsChoice``), reading a local weights
file (safetensors or a weights-only torch state dict), putting a state dict into a module with clear errors,
seeded random initialisation, building a timm model with its weights, and hub downloads that fail fast, on one
line, when there is no network.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from semtok.errors import SemtokError

logger = logging.getLogger(__name__)


class Teacher(nn.Module):
    """A frozen image-understanding model behind one interface.

    Subclasses set ``feature_dim`` (C), ``stride`` (pixels of the teacher's own input per feature cell),
    ``input_size`` (the square side, in pixels, the teacher reads) and implement ``extract``.
    ``forward`` takes images in [-1, 1], resizes them to ``input_size``, applies the teacher's own
    input normalisation and returns ``features_BChw`` (float32, h = w = ``grid_size``).
    Teachers are always frozen and in eval mode.
    """

    name: str = "teacher"
    feature_dim: int
    stride: int
    input_size: int
    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.5, 0.5, 0.5)

    def freeze(self) -> Teacher:
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> Teacher:  # noqa: ARG002 - teachers stay in eval mode
        return super().train(False)

    @property
    def grid_size(self) -> int:
        """Side of the feature grid for an ``input_size`` input."""
        return self.input_size // self.stride

    def normalize(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """Map images in [-1, 1] to the teacher's input: resized to ``input_size`` and normalised."""
        images = images_B3HW.float()
        if images.shape[-1] != self.input_size or images.shape[-2] != self.input_size:
            downsampling = images.shape[-1] > self.input_size or images.shape[-2] > self.input_size
            images = F.interpolate(
                images,
                size=(self.input_size, self.input_size),
                mode="bicubic",
                align_corners=False,
                antialias=downsampling,
            )
        images_01 = (images + 1.0) / 2.0
        mean = images.new_tensor(self.mean).view(1, 3, 1, 1)
        std = images.new_tensor(self.std).view(1, 3, 1, 1)
        return (images_01 - mean) / std

    def extract(self, pixels_B3HW: torch.Tensor) -> torch.Tensor:
        """Features ``[B, C, h, w]`` of already-normalised input at ``input_size``."""
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, images_B3HW: torch.Tensor) -> torch.Tensor:
        """``images_B3HW`` in [-1, 1], any size -> ``features_BChw`` float32 at ``grid_size``."""
        pixels = self.normalize(images_B3HW)
        parameter = next(self.parameters(), None)
        if parameter is not None and parameter.dtype != pixels.dtype and not torch.is_autocast_enabled():
            pixels = pixels.to(parameter.dtype)  # a teacher cast to half / bfloat16 by its owner
        return self.extract(pixels).float()

    def extra_repr(self) -> str:
        return (
            f"name={self.name!r}, feature_dim={self.feature_dim}, stride={self.stride}, "
            f"input_size={self.input_size}, grid={self.grid_size}x{self.grid_size}"
        )


def resize_features(features_BChw: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
    """Resize teacher feature maps to the student's token grid (bicubic, as in the paper)."""
    grid_hw = tuple(int(side) for side in grid_hw)
    if tuple(features_BChw.shape[-2:]) == grid_hw:
        return features_BChw
    return F.interpolate(features_BChw.float(), size=grid_hw, mode="bicubic", align_corners=False)


def tokens_to_map(tokens_BNC: torch.Tensor, side: int, teacher: str) -> torch.Tensor:
    """Patch tokens ``[B, side * side, C]`` in raster order -> a feature map ``[B, C, side, side]``."""
    batch, count, channels = tokens_BNC.shape
    if count != side * side:
        raise SemtokError(f"teacher {teacher!r}: got {count} patch tokens, expected {side}x{side}")
    return tokens_BNC.transpose(1, 2).reshape(batch, channels, side, side)


# ----------------------------------------------------------------------------------------------------------
# Weights: files, state dicts, random init, hub downloads


@dataclass(frozen=True)
class WeightsChoice:
    """Which weights a teacher gets (``build_teacher``'s ``weights``, ``pretrained``, ``random_init``, ``seed``).

    ``file`` (a local ``.safetensors`` or torch state-dict file) wins; else ``pretrained`` (and not
    ``random_init``) takes the teacher's default weights; else random weights drawn under ``seed``.
    """

    file: str | os.PathLike | None = None
    pretrained: bool = True
    random_init: bool = False
    seed: int = 0

    def check(self, teacher: str) -> None:
        """Refuse a weights file together with ``random_init`` (they contradict each other)."""
        if self.random_init and self.file is not None:
            raise SemtokError(
                f"teacher {teacher!r}: random_init=True and a weights file ({self.file}) exclude each other"
            )

    @property
    def wants_default(self) -> bool:
        """No file, and the teacher's default (pretrained) weights are asked for."""
        return self.file is None and self.pretrained and not self.random_init

    @property
    def random_source(self) -> str:
        """The ``weights_source`` of a randomly initialised teacher."""
        return f"random (seed {self.seed})"


PRETRAINED = WeightsChoice()
"""The default choice: a teacher's own pretrained weights."""


_WRAPPER_KEYS = ("state_dict", "model", "module", "model_state_dict", "teacher", "params")


def read_state_dict(path: str | os.PathLike, teacher: str) -> dict[str, torch.Tensor]:
    """Read a state dict from ``path``: ``.safetensors``, or a torch file loaded with ``weights_only=True``.

    Checkpoints that wrap the state dict (``{"state_dict": ...}``, ``{"model": ...}``) are unwrapped and a
    DistributedDataParallel ``module.`` prefix is removed. Floating-point tensors come back as float32.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SemtokError(f"teacher {teacher!r}: weights file not found: {path}")
    try:
        if path.endswith(".safetensors"):
            from safetensors.torch import load_file

            loaded: object = load_file(path, device="cpu")
        else:
            loaded = _torch_load(path)
    except Exception as error:  # noqa: BLE001 - any reader failure is a bad file for the user
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SemtokError(
            f"teacher {teacher!r}: could not read weights file {path} as safetensors or a weights-only "
            f"torch state dict ({type(error).__name__}: {reason[:200]})"
        ) from None
    state = _unwrap(loaded)
    if state is None:
        raise SemtokError(f"teacher {teacher!r}: weights file {path} holds no state dict of tensors")
    state = {key: value for key, value in state.items() if isinstance(value, torch.Tensor)}
    if state and all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    return {key: value.float() if value.is_floating_point() else value for key, value in state.items()}


def _torch_load(path: str) -> object:
    """``torch.load(weights_only=True)``; a TorchScript archive (OpenAI's CLIP ``ViT-B-16.pt``) gives its
    state dict through ``torch.jit.load``, which runs no pickled Python."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except RuntimeError as error:
        if "TorchScript" not in str(error):
            raise
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dict(torch.jit.load(path, map_location="cpu").state_dict())


def _unwrap(loaded: object, depth: int = 0) -> Mapping[str, torch.Tensor] | None:
    if not isinstance(loaded, Mapping) or depth > 3:
        return None
    tensors = sum(isinstance(value, torch.Tensor) for value in loaded.values())
    if tensors and tensors >= len(loaded) // 2:
        return loaded
    for key in _WRAPPER_KEYS:
        if key in loaded:
            inner = _unwrap(loaded[key], depth + 1)
            if inner is not None:
                return inner
    return None


def strip_to_match(
    state_dict: Mapping[str, torch.Tensor], expected: set[str], prefixes: tuple[str, ...]
) -> dict[str, torch.Tensor]:
    """Remove the one prefix in ``prefixes`` that makes the most keys match ``expected``."""
    best = dict(state_dict)
    best_hits = len(expected.intersection(best))
    for prefix in prefixes:
        candidate = {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}
        hits = len(expected.intersection(candidate))
        if hits > best_hits:
            best, best_hits = candidate, hits
    return best


def assign_state_dict(
    module: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    teacher: str,
    source: str,
    ignore_missing: tuple[str, ...] = (),
) -> None:
    """Put ``state_dict`` into ``module`` (``assign=True``, so a module built on the meta device works).

    Missing keys and shape mismatches are a ``SemtokError`` naming ``source``; unexpected keys (a
    classifier head, a text tower, an MAE decoder) are dropped with a log line.
    """
    expected = module.state_dict()
    state = {key: value for key, value in state_dict.items() if key in expected}
    unexpected = sorted(set(state_dict) - set(expected))
    missing = sorted(key for key in expected if key not in state and not key.startswith(ignore_missing))
    mismatched = [
        f"{key} {tuple(value.shape)} vs {tuple(expected[key].shape)}"
        for key, value in state.items()
        if tuple(value.shape) != tuple(expected[key].shape)
    ]
    if mismatched:
        raise SemtokError(
            f"teacher {teacher!r}: weights from {source} do not fit the architecture: "
            f"{len(mismatched)} tensor(s) of the wrong shape, e.g. {'; '.join(mismatched[:2])}"
        )
    if missing:
        raise SemtokError(
            f"teacher {teacher!r}: weights from {source} lack {len(missing)} of the model's "
            f"{len(expected)} tensors, e.g. {', '.join(missing[:3])}"
        )
    if unexpected:
        logger.info(
            "teacher %r: ignoring %d tensor(s) from %s that the teacher does not use (e.g. %s)",
            teacher,
            len(unexpected),
            source,
            ", ".join(unexpected[:3]),
        )
    module.load_state_dict(state, strict=False, assign=True)
    leftover = [key for key, value in module.state_dict().items() if value.is_meta]
    if leftover:
        raise SemtokError(
            f"teacher {teacher!r}: weights from {source} left {len(leftover)} tensor(s) unset, "
            f"e.g. {', '.join(leftover[:3])}"
        )


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block (a random initialisation) under ``torch.manual_seed(seed)`` without touching global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hugging Face endpoint answers a TCP connection (a quick check before slow retries)."""
    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return False
        parsed = urlparse(constants.ENDPOINT)
    except Exception:  # noqa: BLE001
        parsed = urlparse("https://huggingface.co")
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def hub_download(teacher: str, source: str) -> Iterator[None]:
    """Wrap a hub download of ``source`` for ``teacher``.

    With no network the Hugging Face client is put in offline mode (files already in the local cache
    still load; missing ones fail at once instead of after a minute of retries), and any failure becomes a
    one-line ``SemtokError`` telling the user to pass ``--teacher-weights FILE``.
    """
    offline = contextlib.nullcontext()
    if not _hub_reachable():
        try:
            from unittest import mock

            from huggingface_hub import constants

            offline = mock.patch.object(constants, "HF_HUB_OFFLINE", True)
        except ImportError:
            pass
    try:
        with offline:
            yield
    except SemtokError:
        raise
    except Exception as error:  # noqa: BLE001 - every download failure gets the same advice
        raise SemtokError(
            f"teacher {teacher!r}: pretrained weights ({source}) could not be downloaded "
            f"({type(error).__name__}); pass --teacher-weights FILE (a local safetensors or state-dict file)"
        ) from None


def same_padding_grid(size: int, stride: int) -> int:
    """Feature side of a TF-'same'-padded network: ceil(size / stride)."""
    return math.ceil(size / stride)


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


@torch.no_grad()
def teacher_targets(teacher: Teacher, images_B3HW: torch.Tensor, grid_hw: tuple[int, int]) -> torch.Tensor:
    """Teacher features resized (bicubic) to the student's token grid: [B, C, h, w] float32."""
    return resize_features(teacher(images_B3HW), grid_hw)
