"""Push a model folder to the Hugging Face hub: its model card first, then one commit of its three files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from semtok.errors import SemtokError
from semtok.hub.card import CARD_FILE, RUN_FOLDERS, write_model_card
from semtok.hub.files import CONFIG_FILE, WEIGHTS_FILE

PUSHED_FILES = (CONFIG_FILE, WEIGHTS_FILE, CARD_FILE)


def model_folder_of(path: str | os.PathLike) -> Path:
    """The model folder ``path`` names: itself (it has config.json) or the one model sub-folder of a run folder
    (``tokenizer/``, ``ar/``, ``nar/``, ``judge/``)."""
    path = Path(path)
    if (path / CONFIG_FILE).is_file():
        return path
    if not path.is_dir():
        raise SemtokError(f"'{path}' does not exist: expected a run folder or a model folder")
    found = [path / name for name in RUN_FOLDERS if (path / name / CONFIG_FILE).is_file()]
    if len(found) != 1:
        names = ", ".join(f.name for f in found) or f"no {'/, '.join(RUN_FOLDERS)}/ with a {CONFIG_FILE}"
        raise SemtokError(f"'{path}' holds {names}: expected exactly one model folder (name it instead)")
    return found[0]


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    facts: dict[str, Any] | None = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "semtok push",
) -> str:
    """Write ``folder``'s model card (metrics of its run included), create ``repo_id`` (if new) and upload
    config.json, model.safetensors and README.md in one commit; returns the commit URL (str).

    Raises:
        SemtokError: one line when the hub refuses or cannot be reached (offline, no token, no rights).
    """
    from huggingface_hub import HfApi

    from semtok.hub.pretrained import _REPO_ID

    if not _REPO_ID.match(repo_id):
        raise SemtokError(f"--repo '{repo_id}': expected a hub repo id org/name")
    folder = Path(folder)
    write_model_card(folder, source=folder, facts=facts, repo_id=repo_id)
    api = HfApi(token=token)
    try:
        repo = api.create_repo(repo_id=repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(
            repo_id=getattr(repo, "repo_id", repo_id),
            repo_type="model",
            folder_path=str(folder),
            allow_patterns=list(PUSHED_FILES),
            commit_message=commit_message,
        )
    except Exception as error:  # HTTP, offline, auth: the hub client's errors are many; one line
        detail = (str(error).strip().splitlines() or [""])[0][:200]
        raise SemtokError(f"push to '{repo_id}' failed ({type(error).__name__}: {detail})") from None
    return str(getattr(commit, "commit_url", commit))
