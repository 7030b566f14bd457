"""The bench suite's training stages of a row: its tokenizer and its pixel decoder (:mod:`semtok.pipelines.suite`)."""

from __future__ import annotations

from pathlib import Path

from semtok.config import load_config
from semtok.pipelines.stages import resume_train
from semtok.pipelines.suite_rows import ROWS, Budget, kmeans_iters, scaled


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
