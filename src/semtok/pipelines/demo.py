"""The embedded default end to end (``semtok demo`` / ``make demo``).

IU tokenizer -> its pixel decoder -> reconstruction metrics -> token files -> class-conditional AR model -> judge
classifier -> samples (a grid per class) -> generation metrics -> report.md. The tokenizer is VQ-KD with the
EfficientNet-Lite0 teacher by default, or the paper's Cluster tokenizer (``tokenizer="cluster"``: spherical k-means
of the same frozen teacher's features, a 1-minute build; with the earlier 800-step VQ-KD recipe a fresh run gave
class accuracy 0.992 against VQ-KD's 0.58 but gFID 85.6 against 51.7, its pixel decoder reconstructing far worse:
rFID 81.7 vs 43.4; benchmarks/RESULTS.md, issue 15). The stages train with :data:`RECIPE`'s overrides of the
shared configs (a 10-minute demo on 2 CPU cores). Every stage writes its own folder under ``OUT`` and is reused when
already finished (an interrupted demo continues where it stopped; an interrupted training stage resumes from its
checkpoint).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from semtok.config import load_config
from semtok.errors import SemtokError
from semtok.training.checkpoint import latest_checkpoint

SAMPLES_PER_CLASS = 8
# The demo's recipe: the embedded default's configs (the bench suite's, unchanged) with these overrides, chosen to
# finish in 10 minutes on 2 CPU cores at better quality than the earlier 23-minute recipe (benchmarks/RESULTS.md,
# issue 15; 3 seeds: 586-604 s, gFID 44.1 +- 2.4, class accuracy 0.675 +- 0.060): VQ-KD for 300 steps in bf16 where
# the CPU has it natively; the pixel decoder at 5x the VQGAN learning rate for 300 steps (at 400 steps, 1e-3 vs
# 2e-4: rFID 34.7 vs 53.6 on the same codes); the AR model for 400 steps at twice its learning rate (val NLL 2.272
# vs 2.290 for 600 steps at 1e-3) with no attention dropout (1.2x faster steps). Fewer steps (250 / 300 / 320)
# saved 15 s and fell below the old quality (gFID 53.9). ``--steps`` still overrides every stage's steps.
RECIPE: dict[str, list[str]] = {
    "vqkd": ["train.steps=300", "train.warmup_steps=50", "train.mixed_precision=auto"],
    "decoder": ["train.steps=300", "train.lr=1e-3", "loss.disc_start=150"],
    "ar": ["train.steps=400", "train.lr=2e-3", "train.warmup_steps=60", "model.attn_dropout=0"],
    "judge": [],
}


def stage_overrides(stage: str, steps: int | None = None, seed: int = 0) -> list[str]:
    """The config overrides of the demo's ``stage`` (a key of :data:`RECIPE`): its recipe, then ``train.steps``
    when ``steps`` is given (``semtok demo --steps``) and ``train.seed`` (``--seed``) for every trained stage but
    the judge, which stays the same instrument whatever the seed."""
    overrides = [*RECIPE[stage], *([f"train.steps={steps}"] if steps else [])]
    return overrides if stage == "judge" else [*overrides, f"train.seed={seed}"]


TOKENIZERS = {
    "vqkd": "VQ-KD (EfficientNet-Lite0 teacher)",
    "cluster": "Cluster (k-means of EfficientNet-Lite0 features)",
}


def _stage(name: str, run: Path, done: Path, work: Callable[[bool], Any], timings: dict[str, float]) -> None:
    """Run ``work(resume)`` unless ``done`` exists; resume when ``run`` holds a checkpoint."""
    if done.exists():
        print(f"{name}: already done in {run} (reused)")
        return
    resume = latest_checkpoint(run) is not None
    print(f"{name}: {'continuing' if resume else 'training'} in {run}", flush=True)
    started = time.time()
    work(resume)
    timings[name] = round(time.time() - started, 1)


def _cached_json(path: Path, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    results = compute()
    path.write_text(json.dumps(results, indent=2))
    return results


def check_demo_inputs(
    out: str | Path, steps: int | None = None, tokenizer: str = "vqkd", seed: int = 0
) -> None:
    """Raise a one-line SemtokError unless ``out`` can be the demo's folder, ``steps`` is None or >= 1,
    ``tokenizer`` is one of :data:`TOKENIZERS` and ``seed`` is an int >= 0."""
    if tokenizer not in TOKENIZERS:
        raise SemtokError(f"demo tokenizer: expected one of {list(TOKENIZERS)}, got {tokenizer!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SemtokError(f"demo output folder '{out}' is a file, expected a folder (existing or new)")
    blocking = next((parent for parent in out.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise SemtokError(
            f"demo output folder '{out}': '{blocking}' is a file, so no folder can be made under it"
        )
    if steps is not None and steps < 1:
        raise SemtokError(f"demo steps: expected an int >= 1 (or None for each config's own), got {steps}")
    if not isinstance(seed, int) or seed < 0:
        raise SemtokError(f"demo seed: expected an int >= 0, got {seed!r}")


def run_demo(
    out: str | Path,
    steps: int | None = None,
    progress: bool = True,
    fid: bool = True,
    tokenizer: str = "vqkd",
    seed: int = 0,
) -> Path:
    """Run (or finish) the demo into ``out``; returns the path of ``report.md``.

    ``steps``: train every stage for this many steps (default: each config's own; the Cluster build has none);
    ``fid``: False skips the Inception metrics (rFID, gFID, precision/recall), the slowest part on a CPU;
    ``tokenizer``: ``"vqkd"`` (``vqkd-mnist``) or ``"cluster"`` (``cluster-mnist``), a key of :data:`TOKENIZERS`;
    ``seed``: the training seed of the tokenizer, its decoder and the AR model (the judge and the sampling seeds
    stay fixed, so two seeds' demos differ only by what was trained).
    """
    check_demo_inputs(out, steps, tokenizer, seed)

    from semtok.evaluation.generation import evaluate_generation
    from semtok.evaluation.tokenizer import evaluate_tokenizer
    from semtok.generators.sampler import Sampler
    from semtok.generators.sampling import SamplingConfig
    from semtok.pipelines.tokenize import tokenize_dataset
    from semtok.training import train
    from semtok.training.ar import ARRunConfig
    from semtok.training.judge import JudgeRunConfig
    from semtok.training.pixel import DecoderRunConfig
    from semtok.visual.provenance import write_samples

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.time()

    tokenizer_run = out / tokenizer
    _stage(
        tokenizer,
        tokenizer_run,
        tokenizer_run / "tokenizer" / "model.safetensors",
        lambda resume: train_tokenizer(tokenizer, tokenizer_run, steps, seed, resume, progress),
        timings,
    )
    _stage(
        "decoder",
        out / "decoder",
        out / "decoder" / "tokenizer" / "model.safetensors",
        lambda resume: train(
            "decoder",
            load_config(
                DecoderRunConfig,
                "decoder-vqkd-mnist",
                [f"tokenizer={tokenizer_run}", *stage_overrides("decoder", steps, seed)],
            ),
            out / "decoder",
            resume,
            progress,
        ),
        timings,
    )
    tokenizer_dir = out / "decoder" / "tokenizer"
    print("evaluate: reconstructions of the val split", flush=True)
    recon = _cached_json(
        out / "eval_val.json",
        lambda: evaluate_tokenizer(tokenizer_dir, "mnist5k", "val", progress=progress, fid=fid),
    )
    for split in ("train", "val"):
        manifest = out / "tokens" / f"{split}.json"
        if not manifest.exists():
            print(f"tokenize: {split} split -> {manifest}", flush=True)
            tokenize_dataset(tokenizer_dir, "mnist5k", split, manifest, progress=progress)
    _stage(
        "ar",
        out / "ar",
        out / "ar" / "ar" / "model.safetensors",
        lambda resume: train(
            "ar",
            load_config(
                ARRunConfig,
                "ar-mnist",
                [
                    f"data.tokens={out / 'tokens' / 'train.json'}",
                    f"data.val_tokens={out / 'tokens' / 'val.json'}",
                    *stage_overrides("ar", steps, seed),
                ],
            ),
            out / "ar",
            resume,
            progress,
        ),
        timings,
    )
    _stage(
        "judge",
        out / "judge",
        out / "judge" / "judge" / "model.safetensors",
        lambda resume: train(
            "judge",
            load_config(JudgeRunConfig, "judge-mnist", stage_overrides("judge", steps)),
            out / "judge",
            resume,
            progress,
        ),
        timings,
    )

    sampling = SamplingConfig()  # the paper's: T 1.0, top-k 600, top-p 0.92, CFG 1.75
    sampler = Sampler(out / "ar")
    grids = []
    for label in range(sampler.num_classes):
        path = out / "samples" / f"class_{label}.png"
        if not path.exists():
            labels = torch.full((SAMPLES_PER_CLASS,), label)
            write_samples(sampler, labels, path, sampling, seed=label, per_row=SAMPLES_PER_CLASS)
        grids.append(path)
    print("evaluate: generation (one sample per val label)", flush=True)
    generation: dict[str, Any] = {}
    if fid:
        generation = _cached_json(
            out / "eval_generation_val.json",
            lambda: evaluate_generation(
                out / "ar", "mnist5k", "val", sampling, 0, judge=out / "judge", progress=progress
            ),
        )
    ar_summary = json.loads((out / "ar" / "summary.json").read_text())
    judge_summary = json.loads((out / "judge" / "summary.json").read_text())
    report = write_report(
        out, recon, generation, ar_summary, judge_summary, grids, sampling, timings, tokenizer, seed
    )
    print(f"demo finished in {time.time() - started:.0f} s; report: {report.resolve()}")
    return report


def train_tokenizer(kind: str, run: Path, steps: int | None, seed: int, resume: bool, progress: bool) -> None:
    """The demo's tokenizer into ``run`` (``run/tokenizer`` afterwards): the Cluster build (``cluster-mnist``,
    ``build.seed`` = ``seed``, teacher features not kept; it has no steps and no checkpoint, so an interrupted build
    starts again) or VQ-KD training (``vqkd-mnist`` with :func:`stage_overrides`, resumed from its checkpoint when
    ``resume``)."""
    if kind == "cluster":
        from semtok.tokenizers.cluster_build import ClusterRunConfig, build_cluster_tokenizer

        overrides = ["build.keep_features=false", f"build.seed={seed}"]
        build_cluster_tokenizer(load_config(ClusterRunConfig, "cluster-mnist", overrides), run, progress)
    else:
        from semtok.training import train
        from semtok.training.vqkd import VQKDRunConfig

        config = load_config(VQKDRunConfig, "vqkd-mnist", stage_overrides("vqkd", steps, seed))
        train("vqkd", config, run, resume, progress)


def _value(results: dict[str, Any], key: str, digits: int = 3) -> str:
    value = results.get(key)
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def write_report(
    out: Path,
    recon: dict[str, Any],
    generation: dict[str, Any],
    ar_summary: dict[str, Any],
    judge_summary: dict[str, Any],
    grids: list[Path],
    sampling: Any,
    timings: dict[str, float],
    tokenizer_kind: str = "vqkd",
    seed: int = 0,
) -> Path:
    """``OUT/report.md``: the metrics table, the reconstruction grid and one sample grid per class;
    ``tokenizer_kind``: the key of :data:`TOKENIZERS` the demo ran with; ``seed``: its training seed."""
    from semtok.tokenizers.base import Tokenizer
    from semtok.visual.grids import reconstruction_grid, save_grid

    tokenizer = Tokenizer.from_pretrained(out / "decoder" / "tokenizer")
    from semtok.data import build_dataset

    val = build_dataset("mnist5k", "val", tokenizer.config.image_size)
    images = torch.stack([val[i][0] for i in range(0, len(val), len(val) // 16)][:16])
    recon_grid = save_grid(reconstruction_grid(tokenizer, images), out / "reconstructions.png")
    judge_accuracy = judge_summary.get("val_accuracy", judge_summary.get("val_top1"))
    lines = [
        f"# semtok demo: MNIST-5k, {TOKENIZERS[tokenizer_kind]} + pixel decoder + class-conditional AR",
        "",
        "| stage | metric | value |",
        "|---|---|---|",
        f"| tokenizer (val, {recon.get('images')} images) | codebook usage | {_value(recon, 'usage')} |",
        f"| | perplexity exp(H) | {_value(recon, 'perplexity', 1)} |",
        f"| | teacher cosine | {_value(recon, 'teacher_cosine')} |",
        f"| | PSNR / SSIM | {_value(recon, 'psnr', 2)} / {_value(recon, 'ssim')} |",
        f"| | rFID | {_value(recon, 'rfid', 2)} |",
        f"| AR ({ar_summary.get('parameters', 0):,} parameters) | val NLL (nats/token) | "
        f"{_value(ar_summary, 'val_nll')} |",
        f"| generation ({generation.get('samples', 'n/a')} samples, one per val label) | gFID | "
        f"{_value(generation, 'gfid', 2)} |",
        f"| | precision / recall (k=3) | {_value(generation, 'precision')} / {_value(generation, 'recall')} |",
        f"| | class accuracy (judge val top-1 {judge_accuracy}) | {_value(generation, 'class_accuracy')} |",
        f"| | Inception Score | {generation.get('inception_score', 'skipped: no full Inception weights')} |",
        "",
        f"Sampling: temperature {sampling.temperature}, top-k {sampling.top_k}, top-p {sampling.top_p}, "
        f"CFG {sampling.cfg_scale}. FID extractor: {generation.get('fid_extractor', recon.get('fid_extractor'))}; "
        f"reference: {generation.get('fid_reference', recon.get('fid_reference'))}.",
        f"Training seed {seed} (`--seed`); stage times this run (s): "
        f"{json.dumps(timings) if timings else 'all stages reused'}.",
        "",
        *suite_comparison(out, recon, generation, tokenizer_kind),
        "## Reconstructions (rows: val originals, then their reconstructions)",
        "",
        f"![reconstructions]({recon_grid.relative_to(out)})",
        "",
        "## Samples, one grid per class (each PNG records tokenizer, AR model, class, seed and settings)",
        "",
    ]
    for label, grid in enumerate(grids):
        lines += [f"class {label}: ![class {label}]({grid.relative_to(out)})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


def _steps(run: Path) -> str:
    try:
        return str(json.loads((run / "summary.json").read_text())["steps"])
    except (OSError, ValueError, KeyError):
        return "?"


def _mean_std(row: dict[str, Any], key: str, digits: int) -> str:
    value, spread = row.get(key), row.get(f"{key}_std")
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" + (f" ± {spread:.{digits}f}" if spread else "")


def suite_comparison(
    out: Path, recon: dict[str, Any], generation: dict[str, Any], tokenizer_kind: str = "vqkd"
) -> list[str]:
    """Report lines: this demo's rFID / gFID / class accuracy beside the bench suite's shipped main table
    (:mod:`semtok.pipelines.suite_reference`), with the budgets of both, so a newcomer sees where VQ-KD, the
    Cluster tokenizer and the pixel baselines stand."""
    from semtok.pipelines.suite_reference import load_reference

    reference = load_reference()
    lines = ["## Where this run stands: the bench suite's table", ""]
    if reference is None:
        return [*lines, "The suite's reference table is not installed with this copy of semtok.", ""]
    budget = reference.get("budget") or {}
    suite_budget = "/".join(str(budget.get(k, "?")) for k in ("tokenizer_steps", "decoder_steps", "ar_steps"))
    tokenizer_steps = "k-means" if tokenizer_kind == "cluster" else _steps(out / tokenizer_kind)
    demo_budget = "/".join([tokenizer_steps, _steps(out / "decoder"), _steps(out / "ar")])
    lines += [
        "| tokenizer | steps (tokenizer / pixel decoder / AR) | rFID | probe top-1 | gFID (AR) | class acc. (AR) |",
        "|---|---|---:|---:|---:|---:|",
        f"| **this demo: {TOKENIZERS[tokenizer_kind]}** | {demo_budget} | {_value(recon, 'rfid', 2)} | n/a | "
        f"**{_value(generation, 'gfid', 2)}** | **{_value(generation, 'class_accuracy')}** |",
    ]
    for row in reference.get("rows", []):
        lines.append(
            f"| {row.get('label', row.get('row'))} | {suite_budget} | {_mean_std(row, 'rfid', 2)} | "
            f"{_mean_std(row, 'probe_top1', 3)} | {_mean_std(row, 'gfid', 2)} | "
            f"{_mean_std(row, 'class_accuracy', 3)} |"
        )
    lines += [
        "",
        f"Suite rows: {reference.get('source', 'the bench suite')}. Same data, judge protocol and FID reference "
        "(500 samples, one per val label, against the 500 val images). The demo's own recipe (`RECIPE` in "
        "`semtok.pipelines.demo`: the pixel decoder and the AR model at 5x and 2x the suite's learning rates, "
        "VQ-KD in bf16 where the CPU has it; the steps above) differs from the suite's, so "
        "compare its row with the suite's row of the same tokenizer as a recipe effect, and the suite's rows "
        "with each other as the paper's comparison (`make bench`, `benchmarks/RESULTS.md`).",
        "",
    ]
    return lines
