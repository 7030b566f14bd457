"""Stages of a suite: each skipped when its output exists, timed into ``times.json``; resumable training."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class Stages:
    """Runs a row's stages, each skipped when its output exists; records seconds per stage in ``times.json``."""

    def __init__(self, row_dir: Path) -> None:
        self.row_dir = row_dir
        row_dir.mkdir(parents=True, exist_ok=True)
        self.times_path = row_dir / "times.json"
        self.times: dict[str, float] = (
            json.loads(self.times_path.read_text()) if self.times_path.exists() else {}
        )

    def run(self, name: str, done: Path, work: Callable[[], Any]) -> None:
        """``work()`` as stage ``name`` unless ``done`` (its output) exists; its seconds go to ``times.json``."""
        if done.exists():
            return
        print(f"[{self.row_dir.name}] {name}", flush=True)
        started = time.time()
        work()
        self.times[name] = round(time.time() - started, 1)
        self.times_path.write_text(json.dumps(self.times, indent=2))


def resume_train(run_dir: Path, work: Callable[[bool], Any]) -> None:
    """``work(resume)``: resume from the run folder's last checkpoint if it has one, else start it."""
    from semtok.training.checkpoint import latest_checkpoint

    work(latest_checkpoint(run_dir) is not None)


def write_json(path: Path, results: dict[str, Any]) -> None:
    """``results`` as indented JSON at ``path``."""
    path.write_text(json.dumps(results, indent=2))
