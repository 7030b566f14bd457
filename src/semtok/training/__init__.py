"""Training: one engine (:mod:`semtok.training.engine`) and the stages that plug into it
(:mod:`semtok.training.registry`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def train(
    stage: str,
    config: Any,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    stop_at: int | None = None,
) -> dict[str, Any]:
    """Train stage ``stage`` (``vqkd``, ``cluster``, ``vqgan``, ``cvq``, ``fsq``, ``decoder``, ``judge``, ``ar``)
    with ``config`` (its run config, e.g. ``load_config(config_class("vqkd"), "vqkd-mnist")``) into ``out_dir``.

    Returns the run summary (also ``OUT/summary.json``); with ``stop_at``, the run checkpoints and stops after
    that step and returns ``{"kind", "stopped_at_step", "steps", <model folder>: None}`` (continue with
    ``resume=True``). ``resume`` on a folder without a checkpoint yet starts at step 0. ``out_dir`` gets
    ``config.yaml``, ``checkpoints/``, ``log.jsonl``, ``tb/``, the model folder and ``summary.json``; on other
    processes than the main one the summary is ``{}``.
    """
    from semtok.training.engine import Engine
    from semtok.training.registry import build_stage

    return Engine(build_stage(stage, config), out_dir, progress).run(resume, stop_at)
