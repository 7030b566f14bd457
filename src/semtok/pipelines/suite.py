"""The paper's comparison at small scale (``semtok bench --suite mnist`` / ``make bench``).

Every tokenizer (VQGAN, FSQ, CVQ-VAE, VQ-KD, Cluster; plus the teacher ablation: VQ-KD with EfficientNet-Lite2 and
with a randomly initialised Lite0) is trained with the same step budget and seed, gets a pixel decoder where it
needs one, and both families of proposal network are trained on its tokens with the same budget: the AR model
(``ar-mnist``) and the masked MaskGIT / MAGE model (``nar-mnist``). Each row is evaluated: codebook usage,
perplexity, rFID, PSNR, SSIM, linear probe, then, for each family, gFID / precision / recall / class accuracy over
several sampling seeds (the paper's FID_AR and FID_NAR).

Layout of ``OUT`` (every stage is reused when its output exists, so a rerun after a crash continues):
  judge/                         the judge classifier (shared by every row)
  ROW/tokenizer_run/             tokenizer training (or the Cluster build)
  ROW/decoder_run/               pixel decoder (feature tokenizers)
  ROW/eval_val.json              reconstruction metrics; ROW/probe_val.json linear probe
  ROW/tokens/{train,val}.json    token files;  ROW/ar_run/  the AR model;  ROW/nar_run/  the masked model
  ROW/generation_seed{S}.json    AR generation metrics per seed;  ROW/samples/class_{k}.png AR sample grids
  ROW/nar_generation_seed{S}.json, ROW/nar_samples/class_{k}.png   the same for the masked model
  ROW/times.json                 seconds per stage (kept from the run that computed it)
  results.json, report.md, report.html
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from semtok.config import load_config
from semtok.errors import SemtokError


@dataclass(frozen=True)
class Budget:
    """Equal budgets for every row; ``eval_images``: val images for every metric (None = all 500).

    ``ar_steps`` / ``nar_steps``: the two proposal networks (same size, equal steps: they compare at equal cost)."""

    tokenizer_steps: int
    decoder_steps: int
    ar_steps: int
    nar_steps: int
    judge_steps: int
    seeds: tuple[int, ...]
    ablation_seeds: tuple[int, ...]
    eval_images: int | None


SUITES: dict[str, Budget] = {
    "mnist": Budget(300, 300, 400, 400, 700, (0, 1, 2), (0,), None),
    "quick": Budget(30, 30, 40, 40, 100, (0,), (0,), 64),
}

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
SAMPLES_PER_CLASS = 8
# proposal-network family (its `train` stage and run folder ROW/{family}_run) -> (config, prefix of its outputs)
GENERATORS: dict[str, tuple[str, str]] = {"ar": ("ar-mnist", ""), "nar": ("nar-mnist", "nar_")}


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
        if done.exists():
            return
        print(f"[{self.row_dir.name}] {name}", flush=True)
        started = time.time()
        work()
        self.times[name] = round(time.time() - started, 1)
        self.times_path.write_text(json.dumps(self.times, indent=2))


def _train(run_dir: Path, work: Callable[[bool], Any]) -> None:
    from semtok.training.checkpoint import latest_checkpoint

    work(latest_checkpoint(run_dir) is not None)


def _write_json(path: Path, results: dict[str, Any]) -> None:
    path.write_text(json.dumps(results, indent=2))


def train_tokenizer(row: str, run_dir: Path, budget: Budget, progress: bool) -> None:
    """The row's tokenizer stage into ``run_dir`` (``run_dir/tokenizer`` afterwards)."""
    kind, config_name, overrides, _ = ROWS[row]
    steps = [f"train.steps={budget.tokenizer_steps}"]
    if kind == "vqkd":
        from semtok.training import train
        from semtok.training.vqkd import VQKDRunConfig

        config = load_config(VQKDRunConfig, config_name, [*steps, *overrides])
        _train(run_dir, lambda resume: train("vqkd", config, run_dir, resume, progress))
    elif kind == "cluster":
        from semtok.tokenizers.cluster_build import ClusterRunConfig, build_cluster_tokenizer

        build_cluster_tokenizer(
            load_config(ClusterRunConfig, config_name, ["build.keep_features=false", *overrides]),
            run_dir,
            progress,
        )
    else:
        from semtok.training import train
        from semtok.training.pixel import RUN_CONFIGS

        config = load_config(RUN_CONFIGS[kind], config_name, [*steps, *overrides])
        _train(run_dir, lambda resume: train(kind, config, run_dir, resume, progress))


def train_decoder(tokenizer_run: Path, run_dir: Path, budget: Budget, progress: bool) -> None:
    from semtok.training import train
    from semtok.training.pixel import DecoderRunConfig

    config = load_config(
        DecoderRunConfig,
        "decoder-vqkd-mnist",
        [f"tokenizer={tokenizer_run}", f"train.steps={budget.decoder_steps}"],
    )
    _train(run_dir, lambda resume: train("decoder", config, run_dir, resume, progress))


def run_row(row: str, out: Path, budget: Budget, judge_dir: Path, progress: bool) -> dict[str, Any]:
    """All stages of one row; returns its results (metrics, seconds per stage)."""
    from semtok.evaluation.probe import probe_token_files
    from semtok.evaluation.tokenizer import evaluate_tokenizer
    from semtok.pipelines.tokenize import tokenize_dataset

    kind, _, _, ablation = ROWS[row]
    row_dir = out / row
    stages = Stages(row_dir)
    tokenizer_run = row_dir / "tokenizer_run"
    stages.run(
        "tokenizer",
        tokenizer_run / "tokenizer" / "model.safetensors",
        lambda: train_tokenizer(row, tokenizer_run, budget, progress),
    )
    final = tokenizer_run
    if kind in ("vqkd", "cluster"):
        final = row_dir / "decoder_run"
        stages.run(
            "decoder",
            final / "tokenizer" / "model.safetensors",
            lambda: train_decoder(tokenizer_run, final, budget, progress),
        )
    tokenizer_dir = final / "tokenizer"
    stages.run(
        "evaluate",
        row_dir / "eval_val.json",
        lambda: _write_json(
            row_dir / "eval_val.json",
            evaluate_tokenizer(tokenizer_dir, "mnist5k", "val", progress=progress, limit=budget.eval_images),
        ),
    )
    for split in ("train", "val"):
        manifest = row_dir / "tokens" / f"{split}.json"
        stages.run(
            f"tokenize_{split}",
            manifest,
            lambda split=split, manifest=manifest: tokenize_dataset(
                tokenizer_dir, "mnist5k", split, manifest, progress=progress
            ),
        )
    tokens = row_dir / "tokens"
    stages.run(  # the probe reads the token files: no second pass of the encoder over the images
        "probe",
        row_dir / "probe_val.json",
        lambda: _write_json(
            row_dir / "probe_val.json",
            probe_token_files(tokenizer_dir, tokens / "train.json", tokens / "val.json"),
        ),
    )
    seeds = budget.ablation_seeds if ablation else budget.seeds
    for family in GENERATORS:
        generator_stages(family, row_dir, stages, budget, seeds, judge_dir, progress)
    return collect_row(row, row_dir, seeds)


def generator_stages(
    family: str,
    row_dir: Path,
    stages: Stages,
    budget: Budget,
    seeds: tuple[int, ...],
    judge_dir: Path,
    progress: bool,
) -> None:
    """One proposal network (``family``: a key of :data:`GENERATORS`) on the row's tokens: training, generation
    metrics per sampling seed, a sample grid per class; each stage reused when its output exists."""
    from semtok.evaluation.generation import evaluate_generation
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
        ],
    )
    stages.run(
        family,
        run_dir / family / "model.safetensors",
        lambda: _train(run_dir, lambda r: train(family, config, run_dir, r, progress)),
    )
    sampling = SamplingConfig()
    for seed in seeds:
        path = row_dir / f"{prefix}generation_seed{seed}.json"
        stages.run(
            f"{prefix}generation_seed{seed}",
            path,
            lambda seed=seed, path=path: _write_json(
                path,
                evaluate_generation(
                    run_dir,
                    "mnist5k",
                    "val",
                    sampling,
                    seed,
                    judge=judge_dir,
                    progress=progress,
                    limit=budget.eval_images,
                ),
            ),
        )
    sampler = None
    for label in range(10):
        grid = row_dir / f"{prefix}samples" / f"class_{label}.png"
        if not grid.exists():
            sampler = sampler or Sampler(run_dir)
            labels = torch.full((SAMPLES_PER_CLASS,), label)
            write_samples(sampler, labels, grid, sampling, seed=label, per_row=SAMPLES_PER_CLASS)


def _generation_stats(row_dir: Path, seeds: tuple[int, ...], prefix: str) -> dict[str, Any]:
    """``{prefix}gfid`` etc.: mean, spread and per-seed values over the seeds' generation files (None if absent)."""
    paths = [row_dir / f"{prefix}generation_seed{s}.json" for s in seeds]
    generations = [json.loads(p.read_text()) for p in paths if p.exists()]
    result: dict[str, Any] = {}
    for key in ("gfid", "precision", "recall", "class_accuracy"):
        values = [g[key] for g in generations if key in g]
        result[f"{prefix}{key}"] = statistics.fmean(values) if values else None
        result[f"{prefix}{key}_std"] = statistics.stdev(values) if len(values) > 1 else None
        result[f"{prefix}{key}_per_seed"] = values
    result[f"{prefix}gfid_reference"] = generations[0].get("fid_reference") if generations else None
    return result


def _summary(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def collect_row(row: str, row_dir: Path, seeds: tuple[int, ...]) -> dict[str, Any]:
    """The row's numbers from its stage outputs (gFID etc. as mean and spread over the seeds).

    AR generation metrics keep their plain keys (``gfid``, ``class_accuracy``...); the masked model's carry the
    prefix ``nar_`` (``nar_gfid``, ``nar_class_accuracy``...), None where its stages have not run."""
    recon = json.loads((row_dir / "eval_val.json").read_text())
    probe = json.loads((row_dir / "probe_val.json").read_text())
    ar = json.loads((row_dir / "ar_run" / "summary.json").read_text())
    nar = _summary(row_dir / "nar_run" / "summary.json")
    result: dict[str, Any] = {
        "row": row,
        "label": LABELS[row],
        "ablation": ROWS[row][3],
        "codebook_size": recon.get("num_codes"),
        "usage": recon.get("usage"),
        "perplexity": recon.get("perplexity"),
        "rfid": recon.get("rfid"),
        "psnr": recon.get("psnr"),
        "ssim": recon.get("ssim"),
        "teacher_cosine": recon.get("teacher_cosine"),
        "probe_top1": probe.get("val_top1"),
        "ar_val_nll": ar.get("val_nll"),
        "nar_val_masked_nll": nar.get("val_masked_nll"),
        "seeds": list(seeds),
        "fid_extractor": recon.get("fid_extractor"),
        "fid_reference": recon.get("fid_reference"),
        "times": _summary(row_dir / "times.json"),
    }
    result.update(_generation_stats(row_dir, seeds, ""))
    result.update(_generation_stats(row_dir, seeds, "nar_"))
    return result


def machine_info() -> dict[str, Any]:
    import os
    import platform

    import numpy

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), None
            )
        info["cpu"] = model or info["cpu"]
    except OSError:
        pass
    from semtok import __version__

    info["semtok"] = __version__
    return info


def run_suite(suite: str, out: str | Path, rows: list[str] | None = None, progress: bool = False) -> Path:
    """Run (or continue) a suite into ``out``; writes results.json, report.md and report.html; returns report.md."""
    from semtok.pipelines.report import write_report
    from semtok.training import train
    from semtok.training.judge import JudgeRunConfig

    if suite not in SUITES:
        raise SemtokError(f"suite: expected one of {list(SUITES)}, got {suite!r}")
    rows = rows or list(ROWS)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise SemtokError(f"rows: unknown {unknown} (known: {list(ROWS)})")
    budget = SUITES[suite]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    judge_run = out / "judge"
    judge_stage = Stages(out / "_shared")
    judge_config = load_config(JudgeRunConfig, "judge-mnist", [f"train.steps={budget.judge_steps}"])
    judge_stage.run(
        "judge",
        judge_run / "judge" / "model.safetensors",
        lambda: _train(judge_run, lambda resume: train("judge", judge_config, judge_run, resume, progress)),
    )
    results = {
        "suite": suite,
        "budget": asdict(budget),
        "machine": machine_info(),
        "judge": json.loads((judge_run / "summary.json").read_text()),
        "rows": {},
    }
    for row in rows:
        results["rows"][row] = run_row(row, out, budget, judge_run, progress)
        _write_json(out / "results.json", results)
    results["wall_seconds_this_run"] = round(time.time() - started, 1)
    results["stage_seconds_total"] = round(
        sum(sum(r["times"].values()) for r in results["rows"].values()) + sum(judge_stage.times.values()), 1
    )
    _write_json(out / "results.json", results)
    report = write_report(out, results)
    print(f"report: {report.resolve()} (and {report.with_suffix('.html').name})")
    return report
