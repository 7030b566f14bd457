"""Reading a public checkpoint file without executing code from it.

``.safetensors`` files load with safetensors; anything else with ``torch.load(weights_only=True)``, whose unpickler
only builds tensors, containers and plain values. Two harmless globals that the field's checkpoints hold as plain
metadata resolve to an inert placeholder instead of the real class (so neither Lightning nor the training script is
imported or run): the callback type that PyTorch Lightning 1.x used as a dict key in ``callbacks``, and the
``argparse.Namespace`` of training arguments. Every other global is refused.
"""

from __future__ import annotations

import os
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from semtok.errors import SemtokError

# metadata globals of public checkpoints, read as inert placeholders (never imported, never called)
INERT_GLOBALS = (
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "argparse.Namespace",
)


class InertGlobal:
    """Stands in for a metadata global: accepts any constructor arguments and state, keeps none, does nothing."""

    def __new__(cls, *args: Any, **kwargs: Any) -> InertGlobal:
        return super().__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def read_checkpoint(path: str | os.PathLike, source: str) -> Any:
    """The object stored in a checkpoint file (a dict for every supported source).

    Args:
        path: a ``.safetensors`` file (-> ``dict[str, Tensor]``) or a torch pickle / zip (``.pt``, ``.ckpt``,
            ``.pth``), loaded on the CPU.
        source: the importer's name, for messages.

    Raises:
        SemtokError: one line: no such file, a truncated or corrupt file, or a pickle that needs a global
            other than tensors, containers and :data:`INERT_GLOBALS` (nothing of it is executed).
    """
    path = Path(path)
    if not path.is_file():
        raise SemtokError(f"{source} checkpoint '{path}' does not exist")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as error:
            raise SemtokError(
                f"{source} checkpoint '{path}' is not a readable safetensors file ({error})"
            ) from None
    inert = [(InertGlobal, name) for name in INERT_GLOBALS]
    try:
        with torch.serialization.safe_globals(inert), warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message="Detected pickle protocol"
            )  # plain pickles: refused below
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle_errors() as error:
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
        found = re.search(r"Unsupported global: GLOBAL (\S+)", text)
        if found:
            raise SemtokError(
                f"{source} checkpoint '{path}' needs code execution to unpickle ({found.group(1)}), refused: "
                "nothing of it ran"
            ) from None
        inner = re.search(r"WeightsUnpickler error:\s*(.+)", text)
        detail = inner.group(1).strip() if inner else (text.strip().splitlines() or [""])[0]
        raise SemtokError(
            f"{source} checkpoint '{path}' is truncated or not a torch checkpoint ({type(error).__name__}: {detail[:200]})"
        ) from None


def pickle_errors() -> tuple[type[BaseException], ...]:
    """What ``torch.load`` raises on a refused global, a truncated zip or a corrupt pickle."""
    import pickle

    return (
        pickle.UnpicklingError,
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        KeyError,
        AttributeError,
        TypeError,
        IndexError,
        zipfile.BadZipFile,
    )


def state_dict_in(
    obj: Any, keys: tuple[str, ...], path: str | os.PathLike, source: str
) -> dict[str, torch.Tensor]:
    """The tensor mapping stored under the first of ``keys`` in ``obj`` (or ``obj`` itself when it is one).

    Raises:
        SemtokError: naming the file and the keys looked for, when ``obj`` holds no such mapping of tensors.
    """
    state = None
    if isinstance(obj, dict):
        for key in keys:
            if isinstance(obj.get(key), dict):
                state = obj[key]
                break
        else:
            if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
                state = obj
    if not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        found = sorted(str(k) for k in obj)[:5] if isinstance(obj, dict) else type(obj).__name__
        raise SemtokError(
            f"{source} checkpoint '{path}' holds no state dict: expected a dict with "
            f"{' or '.join(repr(k) for k in keys)} mapping names to tensors, found {found}"
        )
    return state
