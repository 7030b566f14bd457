"""Files every model folder and run folder shares: the hub layout's names, atomic writes, checked state loads."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from semtok.errors import SemtokError
from semtok.hub import CONFIG_FILE, WEIGHTS_FILE  # noqa: F401 - re-exported: model folders use these names


def load_state_checked(model: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """``model.load_state_dict(state)``, but any missing, unexpected or misshapen tensor is one SemtokError."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshapen = [
        f"{k} {list(state[k].shape)} != {list(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or misshapen:
        detail = "; ".join(
            f"{name}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
            for name, items in (("missing", missing), ("unexpected", unexpected), ("shape", misshapen))
            if items
        )
        raise SemtokError(f"{what} ({detail})")
    model.load_state_dict(state)


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``, so a crash never leaves a half-written file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
