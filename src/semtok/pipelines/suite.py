"""The paper's comparison at small scale (``semtok bench --suite mnist`` / ``make bench``).

Every tokenizer (VQGAN, FSQ, CVQ-VAE, VQ-KD, Cluster; plus the teacher ablation: VQ-KD with EfficientNet-Lite2 and
with a randomly initialised Lite0) is trained with the same step budget and seed, gets a pixel decoder where it
needs one, and both families of proposal network are trained on its tokens with the same budget: the AR model
(``ar-mnist``) and the masked MaskGIT / MAGE model (``nar-mnist``). Each row is evaluated: codebook usage,
perplexity, rFID, PSNR, SSIM, linear probe, then, for each family, gFID / precision / recall / class accuracy over
several sampling seeds (the paper's FID_AR and FID_NAR). The five main rows also ask the text-to-image question
(:mod:`semtok.pipelines.suite_t2i`: the same tokenizer on captioned MNIST, a text AR model, FID_T2I and prompt
adherence on seen and held-out (digit, colour) pairs); ``run_suite(t2i=False)`` / ``--no-t2i`` skips that branch.

Layout of ``OUT`` (every stage is reused when its output exists, so a rerun after a crash continues):
  judge/                         the judge classifier (shared by every row)
  ROW/tokenizer_run/             tokenizer training (or the Cluster build)
  ROW/decoder_run/               pixel decoder (feature tokenizers)
  ROW/eval_val.json              reconstruction metrics; ROW/probe_val.json linear probe
  ROW/tokens/{train,val}.json    token files;  ROW/ar_run/  the AR model;  ROW/nar_run/  the masked model
  ROW/generation_seed{S}.json    AR generation metrics per seed;  ROW/samples/class_{k}.png AR sample grids
  ROW/nar_generation_seed{S}.json, ROW/nar_samples/class_{k}.png   the same for the masked model
  judge_captioned/               the judge of the captioned data (shared by every row's text-to-image branch)
  ROW/t2i/                       main rows: tokenizer_run/, decoder_run/, tokens/, ar_run/ (the text AR model),
                                 generation_seed{S}.json, samples.png (16 prompts: 8 seen, 8 held-out pairs)
  ROW/times.json                 seconds per stage, t2i_* for the text-to-image branch (kept from the run that
                                 computed it)
  results.json, report.md, report.html
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from semtok.config import load_config
from semtok.errors import SemtokError
from semtok.pipelines.stages import Stages, generation_seed_stages, resume_train, write_json


@dataclass(frozen=True)
class Budget:
    """Equal budgets for every row; ``eval_images``: val images for every metric (None = all 500).

    ``ar_steps`` / ``nar_steps``: the two proposal networks (same size, equal steps: they compare at equal cost);
    ``t2i_steps``: the text AR model of the text-to-image branch (it learns the captions' attributes too)."""

    tokenizer_steps: int
    decoder_steps: int
    ar_steps: int
    nar_steps: int
    judge_steps: int
    seeds: tuple[int, ...]
    ablation_seeds: tuple[int, ...]
    eval_images: int | None
    t2i_steps: int


SUITES: dict[str, Budget] = {
    "mnist": Budget(300, 300, 400, 400, 700, (0, 1, 2), (0,), None, t2i_steps=1500),
    "quick": Budget(30, 30, 40, 40, 100, (0,), (0,), 64, t2i_steps=40),
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
# tokenizer kinds whose pixels come from a separately trained pixel decoder
FEATURE_KINDS = ("vqkd", "cluster")
SAMPLES_PER_CLASS = 8
# proposal-network family (its `train` stage and run folder ROW/{family}_run) -> (config, prefix of its outputs)
GENERATORS: dict[str, tuple[str, str]] = {"ar": ("ar-mnist", ""), "nar": ("nar-mnist", "nar_")}


def train_tokenizer(
    row: str,
    run_dir: Path,
    budget: Budget,
    progress: bool,
    dataset: str = "mnist5k",
    extra: tuple[str, ...] = (),
) -> None:
    """The row's tokenizer stage into ``run_dir`` (``run_dir/tokenizer`` afterwards), trained on ``dataset``
    (``extra``: more overrides)."""
    kind, config_name, overrides, _ = ROWS[row]
    overrides = (f"data.dataset={dataset}", *overrides, *extra)
    steps = [f"train.steps={budget.tokenizer_steps}"]
    if kind == "vqkd":
        from semtok.training import train
        from semtok.training.vqkd import VQKDRunConfig

        config = load_config(VQKDRunConfig, config_name, [*steps, *overrides])
        resume_train(run_dir, lambda resume: train("vqkd", config, run_dir, resume, progress))
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
        resume_train(run_dir, lambda resume: train(kind, config, run_dir, resume, progress))


def train_decoder(
    tokenizer_run: Path,
    run_dir: Path,
    budget: Budget,
    progress: bool,
    dataset: str = "mnist5k",
    extra: tuple[str, ...] = (),
) -> None:
    """The pixel decoder of a feature tokenizer (``tokenizer_run``) into ``run_dir``, trained on ``dataset``
    (``extra``: more overrides)."""
    from semtok.training import train
    from semtok.training.pixel import DecoderRunConfig

    config = load_config(
        DecoderRunConfig,
        "decoder-vqkd-mnist",
        [
            f"tokenizer={tokenizer_run}",
            f"train.steps={budget.decoder_steps}",
            f"data.dataset={dataset}",
            *extra,
        ],
    )
    resume_train(run_dir, lambda resume: train("decoder", config, run_dir, resume, progress))


def run_row(
    row: str, out: Path, budget: Budget, judge_dir: Path, progress: bool, t2i_judge: Path | None = None
) -> dict[str, Any]:
    """All stages of one row; returns its results (metrics, seconds per stage). With ``t2i_judge`` (the captioned
    data's judge run) a main row also runs its text-to-image branch (:func:`semtok.pipelines.suite_t2i.t2i_stages`)."""
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
    if kind in FEATURE_KINDS:
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
        lambda: write_json(
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
        lambda: write_json(
            row_dir / "probe_val.json",
            probe_token_files(tokenizer_dir, tokens / "train.json", tokens / "val.json"),
        ),
    )
    seeds = budget.ablation_seeds if ablation else budget.seeds
    for family in GENERATORS:
        generator_stages(family, row_dir, stages, budget, seeds, judge_dir, progress)
    if t2i_judge is not None and not ablation:
        from semtok.pipelines.suite_t2i import t2i_stages

        t2i_stages(row, row_dir, stages, budget, t2i_judge, progress)
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
        lambda: resume_train(run_dir, lambda r: train(family, config, run_dir, r, progress)),
    )
    sampling = SamplingConfig()
    generation_seed_stages(
        stages, run_dir, "mnist5k", judge_dir, seeds, budget, progress, row_dir, prefix, prefix
    )
    sampler = None
    for label in range(10):
        grid = row_dir / f"{prefix}samples" / f"class_{label}.png"
        if not grid.exists():
            sampler = sampler or Sampler(run_dir)
            labels = torch.full((SAMPLES_PER_CLASS,), label)
            write_samples(sampler, labels, grid, sampling, seed=label, per_row=SAMPLES_PER_CLASS)


def generation_stats(
    row_dir: Path,
    seeds: tuple[int, ...],
    prefix: str,
    keys: tuple[str, ...] = ("gfid", "precision", "recall", "class_accuracy"),
    key_prefix: str | None = None,
) -> dict[str, Any]:
    """``{key_prefix}gfid`` etc. (``key_prefix`` defaults to ``prefix``): mean, spread and per-seed values over the
    seeds' files ``row_dir/{prefix}generation_seed{S}.json`` (None where absent)."""
    key_prefix = prefix if key_prefix is None else key_prefix
    paths = [row_dir / f"{prefix}generation_seed{s}.json" for s in seeds]
    generations = [json.loads(p.read_text()) for p in paths if p.exists()]
    result: dict[str, Any] = {}
    for key in keys:
        values = [g[key] for g in generations if g.get(key) is not None]  # None: not measured that seed
        result[f"{key_prefix}{key}"] = statistics.fmean(values) if values else None
        result[f"{key_prefix}{key}_std"] = statistics.stdev(values) if len(values) > 1 else None
        result[f"{key_prefix}{key}_per_seed"] = values
    result[f"{key_prefix}gfid_reference"] = generations[0].get("fid_reference") if generations else None
    return result


def _summary(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def collect_row(row: str, row_dir: Path, seeds: tuple[int, ...]) -> dict[str, Any]:
    """The row's numbers from its stage outputs (gFID etc. as mean and spread over the seeds).

    AR generation metrics keep their plain keys (``gfid``, ``class_accuracy``...); the masked model's carry the
    prefix ``nar_`` (``nar_gfid``, ``nar_class_accuracy``...), None where its stages have not run; the text-to-image
    branch's carry ``t2i_`` (:func:`semtok.pipelines.suite_t2i.collect_t2i`; None for ablation rows / ``--no-t2i``)."""
    from semtok.pipelines.suite_t2i import collect_t2i

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
    result.update(generation_stats(row_dir, seeds, ""))
    result.update(generation_stats(row_dir, seeds, "nar_"))
    result.update(collect_t2i(row_dir, seeds))
    return result


def run_suite(
    suite: str, out: str | Path, rows: list[str] | None = None, progress: bool = False, t2i: bool = True
) -> Path:
    """Run (or continue) a suite into ``out``; writes results.json, report.md and report.html; returns report.md.

    ``t2i``: also the main rows' text-to-image branch (:mod:`semtok.pipelines.suite_t2i`; a second tokenizer and
    decoder per main row, a text AR model of ``t2i_steps``, its evaluations, and the captioned judge)."""
    from semtok.pipelines.machine import machine_info
    from semtok.pipelines.report import write_report
    from semtok.pipelines.suite_t2i import captioned_judge, t2i_results
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
        lambda: resume_train(
            judge_run, lambda resume: train("judge", judge_config, judge_run, resume, progress)
        ),
    )
    main_rows = any(not ROWS[r][3] for r in rows)
    t2i_judge = captioned_judge(out, budget, judge_stage, progress) if t2i and main_rows else None
    results = {
        "suite": suite,
        "budget": asdict(budget),
        "machine": machine_info(),
        "judge": json.loads((judge_run / "summary.json").read_text()),
        "t2i": t2i_results(t2i_judge),
        "rows": {},
    }
    for row in rows:
        results["rows"][row] = run_row(row, out, budget, judge_run, progress, t2i_judge)
        write_json(out / "results.json", results)
    results["wall_seconds_this_run"] = round(time.time() - started, 1)
    results["stage_seconds_total"] = round(
        sum(sum(r["times"].values()) for r in results["rows"].values()) + sum(judge_stage.times.values()), 1
    )
    write_json(out / "results.json", results)
    report = write_report(out, results)
    print(f"report: {report.resolve()} (and {report.with_suffix('.html').name})")
    return report
