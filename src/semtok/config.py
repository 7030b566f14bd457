"""Configs are dataclasses, read from YAML and overridden by `key=value` strings; unknown or ill-typed keys are errors.

A run config is a dataclass whose fields are dataclasses (sections), e.g. ``model``, ``train``, ``data``.
Named configs live in ``semtok/configs/NAME.yaml``; a YAML file of the same shape may be given instead.
No Python-file configs: nothing in a config executes code.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from semtok.errors import SemtokError

CONFIG_DIR = Path(__file__).parent / "configs"
T = TypeVar("T")


def named_configs() -> list[str]:
    """Names of the configs that ship with semtok."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def read_config_source(name_or_path: str) -> dict[str, Any]:
    """The raw mapping of a named config (``vqkd-mnist``) or of a YAML file."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") or path.exists()):
        path = CONFIG_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise SemtokError(
                f"config '{name_or_path}' is neither a YAML file nor a named config "
                f"(named: {', '.join(named_configs())})"
            )
    if not path.exists():
        raise SemtokError(f"config file '{path}' does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        first = str(error).splitlines()[0]
        raise SemtokError(f"config file '{path}' is not valid YAML ({first})") from None
    if not isinstance(raw, dict):
        raise SemtokError(f"config file '{path}' must hold a mapping of sections, got {type(raw).__name__}")
    return raw


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Check (and gently convert) ``value`` to the annotated type ``tp``; errors name ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return coerce(value, option, key)
            except SemtokError as error:
                errors.append(str(error))
        raise SemtokError(f"config key '{key}': expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise SemtokError(f"config key '{key}': expected one of {list(args)}, got {value!r}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else value.split(",")
        if not isinstance(value, list | tuple):
            raise SemtokError(f"config key '{key}': expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise SemtokError(f"config key '{key}': expected {len(args)} values, got {len(value)}")
            return tuple(coerce(v, a, key) for v, a in zip(value, args))
        item_tp = args[0] if args else Any
        items = [coerce(v, item_tp, key) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise SemtokError(f"config key '{key}': expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise SemtokError(f"config key '{key}': expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise SemtokError(f"config key '{key}': expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise SemtokError(f"config key '{key}': expected a number, got {value!r}")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise SemtokError(f"config key '{key}': expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise SemtokError(f"config key '{key}': expected a string, got {value!r}")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise SemtokError(f"config key '{key}': expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    raise SemtokError(f"config key '{key}': unsupported type {_type_name(tp)}")


def from_dict(cls: type[T], raw: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping; every key must be a field of the right type."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    values = {}
    for key, value in raw.items():
        if key not in fields:
            raise SemtokError(
                f"config key '{prefix}{key}' is unknown (known: {', '.join(prefix + k for k in fields)})"
            )
        values[key] = coerce(value, hints[key], prefix + key)
    try:
        return cls(**values)
    except SemtokError:
        raise
    except (TypeError, ValueError) as error:
        raise SemtokError(f"config '{prefix.rstrip('.') or cls.__name__}': {error}") from None


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings to a raw mapping (values parsed as YAML scalars)."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        if "=" not in item:
            raise SemtokError(f"config override '{item}': expected key=value, e.g. train.steps=100")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            value = text
        node = merged
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise SemtokError(f"config override '{item}': '{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return merged


def to_dict(config: Any) -> dict[str, Any]:
    """A plain mapping (YAML/JSON-ready: tuples become lists) of a config dataclass."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def load_config(
    cls: type[T], source: str | None, overrides: list[str] | None = None, ignore: tuple[str, ...] = ()
) -> T:
    """Read a named config or YAML file (or the class defaults when ``source`` is None), apply overrides.

    ``ignore``: top-level keys that a saved run config carries for the record (e.g. ``kind``) and that are dropped.
    """
    raw = read_config_source(source) if source else {}
    raw = {k: v for k, v in raw.items() if k not in ignore}
    raw = apply_overrides(raw, overrides or [])
    return from_dict(cls, raw)


def run_dataset(run_dir: str | Path) -> str:
    """The data set a run was trained on (``data.dataset`` of its ``config.yaml``), else the embedded default."""
    config_path = Path(run_dir) / "config.yaml"
    if config_path.is_file():
        raw = yaml.safe_load(config_path.read_text()) or {}
        return str((raw.get("data") or {}).get("dataset") or "mnist5k")
    return "mnist5k"


def run_labels(run_dir: str | Path) -> str:
    """How a run read its image folder's labels (``data.labels`` of its ``config.yaml``), else "auto"."""
    config_path = Path(run_dir) / "config.yaml"
    if config_path.is_file():
        raw = yaml.safe_load(config_path.read_text()) or {}
        data = raw.get("data") if isinstance(raw, dict) else None
        return str((data or {}).get("labels") or "auto")
    return "auto"


def nest_flat_keys(raw: dict[str, Any], section: str, keys: dict[str, str]) -> dict[str, Any]:
    """``raw`` (a config mapping of an older layout) with its flat ``keys`` (old name -> name in the section)
    moved into the sub-mapping ``section``; a mapping that already has the section, or none of the keys, is
    returned unchanged. Used to read folders saved before a section existed."""
    if isinstance(raw.get(section), dict):
        return raw
    found = [key for key in keys if key in raw]
    if not found:
        return raw
    nested = {k: v for k, v in raw.items() if k not in keys}
    nested[section] = {keys[k]: raw[k] for k in found}
    return nested
