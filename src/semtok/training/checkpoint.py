"""Training checkpoints without pickle: safetensors for tensors, JSON for everything else, written atomically.

Layout of ``OUT/checkpoints/step_00000100/``:
  NAME.safetensors           each (unwrapped) module's state dict, e.g. ``model``, ``discriminator``
  optimizer_NAME.safetensors each optimizer's per-parameter tensors (``{param_index}.{name}``)
  rng.safetensors        torch CPU (and CUDA) generator states, numpy's key array
  state.json             step, epoch, optimizer param_groups, python/numpy RNG scalars, run info
``OUT/checkpoints/latest`` names the newest complete checkpoint. A checkpoint folder is first written as
``.step_X.tmp`` and renamed when complete, so a crash never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from semtok.errors import SemtokError
from semtok.hub.files import atomic_write, load_state_checked


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every RNG's state, split into tensors and JSON-able values."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["cuda"] = torch.cuda.get_rng_state()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(np.asarray(np_keys, dtype=np.int64))
    py_version, py_internal, py_gauss = random.getstate()
    scalars = {
        "numpy": [np_name, int(np_pos), int(np_has_gauss), float(np_gauss)],
        "python": [py_version, list(py_internal), py_gauss],
    }
    return tensors, scalars


def set_rng_state(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["cuda"])
    name, pos, has_gauss, gauss = scalars["numpy"]
    np.random.set_state((name, tensors["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, py_gauss = scalars["python"]
    random.setstate((version, tuple(internal), py_gauss))


def optimizer_to_flat(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, per_param in state["state"].items():
        for name, value in per_param.items():
            tensors[f"{index}.{name}"] = torch.as_tensor(value).detach().contiguous().cpu()
    return tensors, state["param_groups"]


def optimizer_from_flat(tensors: dict[str, torch.Tensor], param_groups: list[dict]) -> dict:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": param_groups}


def save_checkpoint(
    run_dir: Path,
    step: int,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer],
    info: dict[str, Any],
    keep: int = 2,
) -> Path:
    """Write checkpoint ``step`` of (unwrapped) modules and their optimizers; keep the newest ``keep``."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for key, module in modules.items():
        tensors = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
        save_file(tensors, str(tmp / f"{key}.safetensors"))
    param_groups = {}
    for key, optimizer in optimizers.items():
        opt_tensors, param_groups[key] = optimizer_to_flat(optimizer)
        save_file(opt_tensors, str(tmp / f"optimizer_{key}.safetensors"))
    rng_tensors, rng_scalars = rng_state()
    save_file(rng_tensors, str(tmp / "rng.safetensors"))
    state = {"step": step, "param_groups": param_groups, "rng": rng_scalars, "info": info}
    (tmp / "state.json").write_text(json.dumps(state))
    final = root / name
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    atomic_write(root / "latest", lambda path: Path(path).write_text(name))
    for old in sorted(p for p in root.glob("step_*") if p.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.exists():
        return None
    folder = pointer.parent / pointer.read_text().strip()
    return folder if (folder / "state.json").exists() else None


def load_checkpoint(
    folder: Path,
    modules: dict[str, torch.nn.Module],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    restore_rng: bool = True,
    kind: str | None = None,
) -> dict[str, Any]:
    """Restore modules (and optimizers, RNGs) from ``folder``; returns the JSON state (step, info).

    ``kind``: the run kind the caller expects; a checkpoint of another kind is a SemtokError.
    """
    folder = Path(folder)
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SemtokError(f"checkpoint '{folder}' is unreadable or incomplete ({error})") from None
    found = state.get("info", {}).get("kind")
    if kind is not None and found != kind:
        raise SemtokError(f"checkpoint '{folder}' is a '{found}' run, not a '{kind}' one")
    try:
        for key, module in modules.items():
            tensors = load_file(str(folder / f"{key}.safetensors"))
            load_state_checked(
                module, tensors, f"checkpoint '{folder}' ({key}) was made by another config or kind"
            )
        for key, optimizer in (optimizers or {}).items():
            opt_tensors = load_file(str(folder / f"optimizer_{key}.safetensors"))
            optimizer.load_state_dict(optimizer_from_flat(opt_tensors, state["param_groups"][key]))
        if restore_rng:
            set_rng_state(load_file(str(folder / "rng.safetensors")), state["rng"])
    except (OSError, SafetensorError, KeyError) as error:
        raise SemtokError(f"checkpoint '{folder}' is unreadable or incomplete ({error})") from None
    return state
