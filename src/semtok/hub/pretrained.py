"""One save/load mechanism for every model folder (tokenizer, AR generator, judge), on ``huggingface_hub``.

A model folder is the Hugging Face hub layout, in semtok's own format:

- ``config.json``: ``{"kind": str, "semtok_version": str, "config": <the config dataclass as a dict>,
  "info": <free-form provenance dict>}``;
- ``model.safetensors``: the state dict (safetensors only, never pickle), with ``{"kind": kind}`` as metadata.

:class:`PretrainedModel` is the mixin every model class takes (``class M(nn.Module, PretrainedModel)``). It is a
``huggingface_hub.ModelHubMixin``, so ``push_to_hub`` comes with it; ``save_pretrained`` and ``from_pretrained``
are semtok's own (see their docstrings for what of the hub mixin's behaviour they replace and why).

:func:`resolve_model_dir` is the one resolver: a run folder (holding ``tokenizer/``, ``ar/`` or ``judge/``), a model
folder itself, or a hub repo id ``"org/name"`` -> a local model folder, with one error wording.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch
from huggingface_hub import ModelHubMixin, hf_hub_download
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from semtok.config import from_dict, to_dict
from semtok.errors import SemtokError
from semtok.hub.card import write_model_card
from semtok.hub.files import CONFIG_FILE, WEIGHTS_FILE, atomic_write, load_state_checked

__all__ = ["PretrainedModel", "read_model_config", "resolve_model_dir"]

T = TypeVar("T", bound="PretrainedModel")

# The keys config.json has besides "info"; anything else at its top level is legacy provenance (see _info_from).
META_KEYS = ("kind", "semtok_version", "config", "info")
# What each run-folder sub-folder holds, for error messages.
FOLDER_NOUNS = {"tokenizer": "tokenizer", "ar": "AR model", "nar": "masked model", "judge": "judge"}
# "org/name" (one slash, hub-legal characters): tried on the hub when no such local path exists.
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _noun(folder: str) -> str:
    return FOLDER_NOUNS.get(folder, folder)


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def resolve_model_dir(
    path: str | os.PathLike,
    folder: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Path:
    """The local model folder that ``path`` names.

    Args:
        path: a run folder holding ``{folder}/config.json``, a model folder holding ``config.json``, or a hub
            repo id ``"org/name"`` (used only when no such local path exists; fetched with ``huggingface_hub``
            into its cache, which honours ``HF_HUB_OFFLINE`` / ``HF_HUB_CACHE``).
        folder: the model's sub-folder in a run folder: ``"tokenizer"``, ``"ar"`` or ``"judge"``.
        revision, cache_dir, force_download, local_files_only, token: passed to ``hf_hub_download`` for repo ids.

    Returns:
        A folder that has ``config.json`` (and, for a repo id, ``model.safetensors`` where the repo has it).

    Raises:
        SemtokError: one line: the path does not exist (and is not a reachable repo id), or holds no model.
    """
    text = os.fspath(path)
    local = Path(text)
    noun = _noun(folder)
    if (local / folder / CONFIG_FILE).is_file():
        return local / folder
    if local.exists():
        if not (local / CONFIG_FILE).is_file():
            raise SemtokError(f"'{local}' holds no {noun} (no {CONFIG_FILE}, no {folder}/{CONFIG_FILE})")
        return local
    if not _REPO_ID.match(text):
        raise SemtokError(
            f"{noun} '{local}' does not exist: expected a run folder (holding {folder}/), {_a(noun)} folder "
            "or a hub repo id org/name"
        )
    return _download(text, noun, revision, cache_dir, force_download, local_files_only, token)


def _download(
    repo_id: str,
    noun: str,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    force_download: bool,
    local_files_only: bool,
    token: str | bool | None,
) -> Path:
    """Fetch ``config.json`` and ``model.safetensors`` of a hub repo into the hub cache -> the snapshot folder."""
    kwargs = {
        "repo_id": repo_id,
        "revision": revision,
        "cache_dir": cache_dir,
        "force_download": force_download,
        "local_files_only": local_files_only,
        "token": token,
    }
    try:
        config_path = Path(hf_hub_download(filename=CONFIG_FILE, **kwargs))
        hf_hub_download(filename=WEIGHTS_FILE, **kwargs)
    except (
        Exception
    ) as error:  # the hub client's errors are many (HTTP, offline, cache, validation): one line
        detail = (str(error).strip().splitlines() or [""])[0][:200]
        from huggingface_hub import constants

        where = (
            "is not in the local hub cache and HF_HUB_OFFLINE is set (only the cache is searched)"
            if constants.HF_HUB_OFFLINE
            else "could not be loaded from the Hugging Face hub"
        )
        raise SemtokError(
            f"{noun} '{repo_id}' does not exist locally and {where} ({type(error).__name__}: {detail})"
        ) from None
    return config_path.parent


def _same_weights_source(source: str | None, directory: Path) -> str | None:
    """``source`` (the folder a model was loaded from) when ``directory`` now holds the very same weights file, so
    the metrics measured there describe it; None when the weights changed (a model trained further, a tokenizer
    that got a pixel decoder) or there is no source."""
    if source is None:
        return None
    theirs, ours = Path(source) / WEIGHTS_FILE, directory / WEIGHTS_FILE
    if not theirs.is_file() or theirs.stat().st_size != ours.stat().st_size:
        return None
    if theirs.resolve() == ours.resolve():
        return source
    digests = []
    for path in (theirs, ours):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):  # noqa: B023 - consumed at once
                digest.update(block)
        digests.append(digest.digest())
    return source if digests[0] == digests[1] else None


def read_model_config(directory: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a model folder: a dict with at least ``kind`` (str) and ``config`` (dict)."""
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise SemtokError(f"'{directory}' holds no model: it has no {CONFIG_FILE}")
    try:
        meta = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        reason = error.msg if isinstance(error, json.JSONDecodeError) else "not UTF-8 text"
        raise SemtokError(f"'{config_path}' is not valid JSON ({reason})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("kind"), str):
        raise SemtokError(f"'{config_path}' is not a semtok model config (needs 'kind' and 'config')")
    return meta


class PretrainedModel(ModelHubMixin):
    """Mixin giving a model ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` and ``info``.

    A class sets ``kind`` (written to config.json), ``config_class`` (its config dataclass), ``run_folder`` (its
    sub-folder in a run folder) and, if its config errors should name a section, ``config_prefix``; its
    ``__init__`` takes the config as first argument. ``info`` is free-form, JSON-ready provenance (the token
    file, data set, class names, a validation score...): saved under ``"info"``, restored on load.

    What this replaces of ``ModelHubMixin``:

    - ``save_pretrained``: the hub mixin deletes config.json before saving (a crash would leave a folder without
      one), writes its own config.json of ``__init__`` arguments when ours is missing, a generic README.md and
      returns None; ours writes the weights, config.json and semtok's model card (:mod:`semtok.hub.card`: kind,
      architecture, provenance, the metrics of the run it was loaded from), each atomically, and returns the folder.
    - ``from_pretrained``: the hub mixin parses config.json itself (no error handling), and feeds its top-level
      keys to ``__init__`` by signature introspection (our ``"config"`` key is a nested dict, our ``"info"`` no
      argument), and knows no run folders; ours resolves the path with :func:`resolve_model_dir` and loads
      through ``_from_pretrained``.
    """

    kind: ClassVar[str] = ""
    config_class: ClassVar[type]
    run_folder: ClassVar[str] = ""
    config_prefix: ClassVar[str] = ""

    @property
    def info(self) -> dict[str, Any]:
        """Free-form provenance (JSON-ready), saved as config.json's ``"info"``."""
        if "_semtok_info" not in self.__dict__:
            self.__dict__["_semtok_info"] = {}
        return self.__dict__["_semtok_info"]

    @info.setter
    def info(self, value: dict[str, Any] | None) -> None:
        self.__dict__["_semtok_info"] = dict(value or {})

    # ----- saving -----

    def save_pretrained(  # type: ignore[override]
        self,
        save_directory: str | os.PathLike,
        *,
        config: dict | None = None,
        repo_id: str | None = None,
        push_to_hub: bool = False,
        model_card_kwargs: dict[str, Any] | None = None,
        **push_to_hub_kwargs: Any,
    ) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``save_directory`` (atomically, file by file).

        Then ``README.md``, the model card (:func:`semtok.hub.card.write_model_card`), with the metrics of the run
        folder the model was loaded from, if any. ``config`` must stay None (config.json is written from
        ``self.config`` and ``self.info``; the argument exists because ``push_to_hub`` passes it).
        ``model_card_kwargs``: ``{"repo_id": "org/name"}`` names the repo in the card's loading lines
        (``push_to_hub(..., model_card_kwargs={"repo_id": ...})``). ``push_to_hub=True`` pushes the folder to
        ``repo_id`` (default: the folder name) afterwards. Returns the folder.
        """
        if config is not None:
            raise SemtokError("save_pretrained: config.json is written from model.config; pass no config")
        if push_to_hub_kwargs and not push_to_hub:
            raise SemtokError(f"save_pretrained: unknown argument(s) {', '.join(sorted(push_to_hub_kwargs))}")
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_pretrained(directory)
        card = dict(model_card_kwargs or {})
        unknown = sorted(set(card) - {"repo_id"})
        if unknown:
            raise SemtokError(
                f"save_pretrained: unknown model_card_kwargs {', '.join(unknown)} (expected repo_id)"
            )
        write_model_card(
            directory,
            source=_same_weights_source(self.__dict__.get("_semtok_folder"), directory),
            facts=self.card_facts(),
            repo_id=card.get("repo_id") or repo_id,
        )
        if push_to_hub:
            self.push_to_hub(
                repo_id or directory.name, model_card_kwargs=model_card_kwargs, **push_to_hub_kwargs
            )
        return directory

    def card_facts(self) -> dict[str, Any]:
        """What the model card says that only the loaded model knows: ``parameters`` (int), and where the model has
        them ``num_codes`` (int) and ``grid`` ([h, w])."""
        facts: dict[str, Any] = {"parameters": sum(p.numel() for p in self.parameters())}  # type: ignore[attr-defined]
        num_codes = getattr(self, "num_codes", None)
        if isinstance(num_codes, int):
            facts["num_codes"] = num_codes
        grid = getattr(self, "grid_size", None) or getattr(self.config, "grid", None)
        if grid and all(isinstance(v, int) and v > 0 for v in grid):
            facts["grid"] = [int(v) for v in grid]
        return facts

    def _save_pretrained(self, save_directory: Path) -> None:
        """The two files: weights first, then config.json (a folder with a config.json is complete)."""
        from semtok import __version__

        meta = {
            "kind": self.kind,
            "semtok_version": __version__,
            "config": to_dict(self.config),
            "info": self.info,
        }
        try:  # before any write, so a bad info never leaves a half-saved folder
            text = json.dumps(meta, indent=2)
        except (TypeError, ValueError) as error:
            raise SemtokError(f"save_pretrained: model.info must be JSON-ready ({error})") from None
        tensors = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        atomic_write(
            save_directory / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp, metadata={"kind": self.kind})
        )
        atomic_write(save_directory / CONFIG_FILE, lambda tmp: Path(tmp).write_text(text))

    # ----- loading -----

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls: type[T],
        pretrained_model_name_or_path: str | os.PathLike,
        map_location: str | torch.device = "cpu",
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: str | bool | None = None,
    ) -> T:
        """Load a model folder, a run folder holding one, or a hub repo id ``"org/name"``.

        Returns the model on ``map_location``, in eval mode, with ``info`` restored. Called on a base class
        with a registry (``Tokenizer``), the class is picked from config.json's ``kind``.
        """
        return cls._from_pretrained(
            model_id=os.fspath(pretrained_model_name_or_path),
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
            map_location=map_location,
        )

    @classmethod
    def _from_pretrained(  # type: ignore[override]
        cls: type[T],
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | os.PathLike | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str | torch.device = "cpu",
        **model_kwargs: Any,
    ) -> T:
        if model_kwargs:
            raise SemtokError(f"from_pretrained: unknown argument(s) {', '.join(sorted(model_kwargs))}")
        directory = resolve_model_dir(
            model_id,
            cls.run_folder,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
        )
        return cls.load_folder(directory, map_location)

    @classmethod
    def load_folder(
        cls: type[T], directory: str | os.PathLike, map_location: str | torch.device = "cpu"
    ) -> T:
        """Load a model folder itself (no run folder, no repo id): the checks every model shares."""
        directory = Path(directory)
        meta = read_model_config(directory)
        target = cls._class_for_kind(meta["kind"], directory)
        if not isinstance(meta.get("config"), dict):
            raise SemtokError(
                f"'{directory / CONFIG_FILE}' is not a semtok model config (needs a 'config' mapping)"
            )
        raw = meta["config"]
        upgrade = getattr(target.config_class, "upgrade_legacy", None)
        if upgrade is not None:  # a folder saved before the config had its current sections
            raw = upgrade(raw)
        try:  # an unknown key, a bad value: the config error, naming the file it is in
            model = target(from_dict(target.config_class, raw, prefix=target.config_prefix))
        except SemtokError as error:
            raise SemtokError(f"'{directory / CONFIG_FILE}': {error}") from None
        weights = directory / WEIGHTS_FILE
        if not weights.is_file():
            raise SemtokError(f"'{directory}' has no {WEIGHTS_FILE}")
        try:
            state = load_file(str(weights), device=str(map_location))
        except (SafetensorError, OSError) as error:
            raise SemtokError(f"'{weights}' is not a readable safetensors file ({error})") from None
        what = f"'{weights}' does not match the model its config.json describes (kind '{meta['kind']}')"
        load_state_checked(model, state, what)
        model.info = target._info_from(meta)
        model.__dict__["_semtok_folder"] = str(directory)  # the model card reads its run's metrics from here
        return model.to(map_location).eval()

    @classmethod
    def _class_for_kind(cls: type[T], kind: str, directory: Path) -> type[T]:
        """The class that loads a folder of ``kind``; a base class with a registry overrides this."""
        if kind != cls.kind:
            raise SemtokError(
                f"'{directory}' holds a '{kind}' model, not {_a(_noun(cls.run_folder))} (kind '{cls.kind}')"
            )
        return cls

    @classmethod
    def _info_from(cls, meta: dict[str, Any]) -> dict[str, Any]:
        """``info`` from a parsed config.json: its ``"info"``, plus any other top-level key (folders written before
        provenance moved under ``"info"`` kept it at the top level, e.g. an AR model's ``tokenizer``)."""
        info = dict(meta["info"]) if isinstance(meta.get("info"), dict) else {}
        for key, value in meta.items():
            if key not in META_KEYS:
                info.setdefault(key, value)
        return info
