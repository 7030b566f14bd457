"""The bench suite's rows, budgets and chain folders (:mod:`semtok.pipelines.suite`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from semtok.config import load_config


@dataclass(frozen=True)
class Budget:
    """Equal budgets for every row; ``eval_images``: val images for every metric (None = all 500).

    ``ar_steps`` / ``nar_steps``: the two proposal networks (same size, equal steps: they compare at equal cost);
    ``t2i_steps``: the text AR model of the text-to-image branch (it learns the captions' attributes too);
    ``train_seeds``: one chain per seed (every training stage and the sampling of its metrics under that seed);
    ``sweep``: the budget sweep's multipliers of the tokenizer-side budget (tokenizer and decoder steps; for
    Cluster the decoder steps and the k-means iterations)."""

    tokenizer_steps: int
    decoder_steps: int
    ar_steps: int
    nar_steps: int
    judge_steps: int
    train_seeds: tuple[int, ...]
    eval_images: int | None
    t2i_steps: int
    sweep: tuple[float, ...]


SUITES: dict[str, Budget] = {
    "mnist": Budget(300, 300, 400, 400, 700, (0, 1, 2), None, t2i_steps=1500, sweep=(1 / 3, 1.0, 10 / 3)),
    "quick": Budget(30, 30, 40, 40, 100, (0,), 64, t2i_steps=40, sweep=(0.5, 1.0)),
}
PARTS = ("main", "ablation", "sweep", "t2i")
SWEEP_ROWS = ("vqgan", "vqkd", "cluster")

# name -> (kind, config, overrides, ablation)
ROWS: dict[str, tuple[str, str, tuple[str, ...], bool]] = {
    "vqgan": ("vqgan", "vqgan-mnist", (), False),
    "fsq": ("fsq", "fsq-mnist", (), False),
    "cvq": ("cvq", "cvq-mnist", (), False),
    "vqkd": ("vqkd", "vqkd-mnist", (), False),
    "cluster": ("cluster", "cluster-mnist", (), False),
    "vqkd-lite2": ("vqkd", "vqkd-mnist", ("model.teacher.name=effnet-lite2",), True),
    "vqkd-random": ("vqkd", "vqkd-mnist", ("model.teacher.random_init=true",), True),
}
LABELS = {
    "vqgan": "VQGAN",
    "fsq": "FSQ",
    "cvq": "CVQ-VAE",
    "vqkd": "VQ-KD (EfficientNet-Lite0)",
    "cluster": "Cluster (EfficientNet-Lite0, k-means)",
    "vqkd-lite2": "VQ-KD (EfficientNet-Lite2)",
    "vqkd-random": "VQ-KD (random-init Lite0)",
}
# tokenizer kinds whose pixels come from a separately trained pixel decoder
FEATURE_KINDS = ("vqkd", "cluster")
SAMPLES_PER_CLASS = 8
# proposal-network family (its `train` stage and run folder CHAIN/{family}_run) -> (config, prefix of its outputs)
GENERATORS: dict[str, tuple[str, str]] = {"ar": ("ar-mnist", ""), "nar": ("nar-mnist", "nar_")}
# metrics of a chain aggregated over the chains (mean, _std, _per_seed), besides the generation / t2i ones
CHAIN_KEYS = (
    "usage",
    "perplexity",
    "rfid",
    "psnr",
    "ssim",
    "teacher_cosine",
    "probe_top1",
    "ar_val_nll",
    "nar_val_masked_nll",
    "t2i_val_nll",
)
GENERATION_KEYS = ("gfid", "precision", "recall", "class_accuracy")


def scaled(steps: int, scale: float) -> int:
    """``steps`` times a sweep multiplier, rounded, at least 1."""
    return max(1, round(steps * scale))


def kmeans_iters(scale: float, overrides: list[str] | None = None) -> int:
    """The Cluster build's k-means iterations (``cluster-mnist``'s, with ``overrides``) times a sweep multiplier."""
    from semtok.tokenizers.cluster_build import ClusterRunConfig

    return scaled(load_config(ClusterRunConfig, "cluster-mnist", overrides or []).model.kmeans_iters, scale)


def chain_dir(out: Path, row: str, seed: int) -> Path:
    """The folder of training seed ``seed``'s chain of ``row``."""
    return out / row / f"seed{seed}"
