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
        print(f"[{'/'.join(self.row_dir.parts[-2:])}] {name}", flush=True)  # e.g. [vqkd/seed0]
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


def generation_seed_stages(
    stages: Stages,
    run_dir: Path,
    dataset: str,
    judge: Path,
    seeds: tuple[int, ...],
    limit: int | None,
    progress: bool,
    out_dir: Path,
    file_prefix: str,
    stage_prefix: str,
) -> None:
    """Generation metrics of the model in ``run_dir`` on ``dataset`` val, one stage per sampling seed (default
    settings; ``limit``: val images, None = all), written to ``out_dir/{file_prefix}generation_seed{S}.json``; each
    reused when its file exists."""
    from semtok.evaluation.generation import evaluate_generation
    from semtok.generators.sampling import SamplingConfig

    for seed in seeds:
        path = out_dir / f"{file_prefix}generation_seed{seed}.json"
        stages.run(
            f"{stage_prefix}generation_seed{seed}",
            path,
            lambda seed=seed, path=path: write_json(
                path,
                evaluate_generation(
                    run_dir,
                    dataset,
                    "val",
                    SamplingConfig(),
                    seed,
                    judge=judge,
                    progress=progress,
                    limit=limit,
                ),
            ),
        )
