"""The bench suite's training stages of a chain: its tokenizer, its pixel decoder, a proposal network with its
generation metrics and sample grids (:mod:`semtok.pipelines.suite`)."""

from __future__ import annotations

from pathlib import Path

import torch

from semtok.config import load_config
from semtok.pipelines.stages import Stages, generation_seed_stages, resume_train
from semtok.pipelines.suite_rows import GENERATORS, ROWS, SAMPLES_PER_CLASS, Budget, kmeans_iters, scaled


def train_tokenizer(
    row: str,
    run_dir: Path,
    budget: Budget,
    progress: bool,
    dataset: str = "mnist5k",
    extra: tuple[str, ...] = (),
    seed: int = 0,
    scale: float = 1.0,
) -> None:
    """The row's tokenizer stage into ``run_dir`` (``run_dir/tokenizer`` afterwards), trained on ``dataset``
    (``extra``: more overrides) under training seed ``seed`` (the Cluster build: ``build.seed``, its image subset,
    k-means initialisation and re-seeding); ``scale``: a sweep multiplier of the tokenizer steps (the Cluster
    build, which has no steps: of its k-means iterations)."""
    kind, config_name, overrides, _ = ROWS[row]
    overrides = (f"data.dataset={dataset}", *overrides, *extra)
    steps = [f"train.steps={scaled(budget.tokenizer_steps, scale)}", f"train.seed={seed}"]
    if kind == "vqkd":
        from semtok.training import train
        from semtok.training.vqkd import VQKDRunConfig

        config = load_config(VQKDRunConfig, config_name, [*steps, *overrides])
        resume_train(run_dir, lambda resume: train("vqkd", config, run_dir, resume, progress))
    elif kind == "cluster":
        from semtok.tokenizers.cluster_build import ClusterRunConfig, build_cluster_tokenizer

        overrides = ("build.keep_features=false", f"build.seed={seed}", *overrides)
        if scale != 1.0:
            overrides = (*overrides, f"model.kmeans_iters={kmeans_iters(scale, list(overrides))}")
        build_cluster_tokenizer(
            load_config(ClusterRunConfig, config_name, list(overrides)), run_dir, progress
        )
    else:
        from semtok.training import train
        from semtok.training.pixel import RUN_CONFIGS

        config = load_config(RUN_CONFIGS[kind], config_name, [*steps, *overrides])
        resume_train(run_dir, lambda resume: train(kind, config, run_dir, resume, progress))


def train_decoder(
    tokenizer_run: Path,
    run_dir: Path,
    budget: Budget,
    progress: bool,
    dataset: str = "mnist5k",
    extra: tuple[str, ...] = (),
    seed: int = 0,
    scale: float = 1.0,
) -> None:
    """The pixel decoder of a feature tokenizer (``tokenizer_run``) into ``run_dir``, trained on ``dataset``
    (``extra``: more overrides) under training seed ``seed``; ``scale``: a sweep multiplier of its steps."""
    from semtok.training import train
    from semtok.training.pixel import DecoderRunConfig

    config = load_config(
        DecoderRunConfig,
        "decoder-vqkd-mnist",
        [
            f"tokenizer={tokenizer_run}",
            f"train.steps={scaled(budget.decoder_steps, scale)}",
            f"train.seed={seed}",
            f"data.dataset={dataset}",
            *extra,
        ],
    )
    resume_train(run_dir, lambda resume: train("decoder", config, run_dir, resume, progress))


def grid_paths(chain: Path, prefix: str) -> list[Path]:
    """The ten class sample grids of a family (``prefix``: its output prefix) in a chain."""
    return [chain / f"{prefix}samples" / f"class_{label}.png" for label in range(10)]


def generator_stages(
    family: str,
    row_dir: Path,
    stages: Stages,
    budget: Budget,
    seeds: tuple[int, ...],
    judge_dir: Path,
    progress: bool,
    grids: bool = True,
) -> None:
    """One proposal network (``family``: a key of :data:`GENERATORS`) on the tokens of a chain (``row_dir``):
    training (under ``train.seed`` = the first of ``seeds``), generation metrics per sampling seed, with ``grids``
    a sample grid per class; each stage reused when its output exists."""
    from semtok.generators.sampler import Sampler
    from semtok.generators.sampling import SamplingConfig
    from semtok.training import train
    from semtok.training.ar import ARRunConfig
    from semtok.training.nar import NARRunConfig
    from semtok.visual.provenance import write_samples

    config_name, prefix = GENERATORS[family]
    run_dir = row_dir / f"{family}_run"
    steps = budget.ar_steps if family == "ar" else budget.nar_steps
    config = load_config(
        ARRunConfig if family == "ar" else NARRunConfig,
        config_name,
        [
            f"data.tokens={row_dir / 'tokens' / 'train.json'}",
            f"data.val_tokens={row_dir / 'tokens' / 'val.json'}",
            f"train.steps={steps}",
            f"train.seed={seeds[0]}",
        ],
    )
    stages.run(
        family,
        run_dir / family / "model.safetensors",
        lambda: resume_train(run_dir, lambda r: train(family, config, run_dir, r, progress)),
    )
    sampling = SamplingConfig()
    generation_seed_stages(
        stages, run_dir, "mnist5k", judge_dir, seeds, budget.eval_images, progress, row_dir, prefix, prefix
    )
    sampler = None
    for label, grid in enumerate(grid_paths(row_dir, prefix) if grids else []):
        if not grid.exists():
            sampler = sampler or Sampler(run_dir)
            labels = torch.full((SAMPLES_PER_CLASS,), label)
            write_samples(sampler, labels, grid, sampling, seed=label, per_row=SAMPLES_PER_CLASS)
