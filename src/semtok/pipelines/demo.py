"""The embedded default end to end (``semtok demo`` / ``make demo``).

IU tokenizer -> its pixel decoder -> reconstruction metrics -> token files -> class-conditional AR model -> judge
classifier -> samples (a grid per class) -> generation metrics -> report.md. The tokenizer is VQ-KD with the
EfficientNet-Lite0 teacher by default, or the paper's Cluster tokenizer (``tokenizer="cluster"``: spherical k-means
of the same frozen teacher's features, a 1-minute build where VQ-KD distils for ten; on a fresh run it gave class
accuracy 0.992 against VQ-KD's 0.58 but gFID 85.6 against 51.7, its pixel decoder reconstructing far worse: rFID
81.7 vs 43.4; benchmarks/RESULTS.md, issue 15). Every stage writes its own folder under ``OUT`` and is reused when
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


def check_demo_inputs(out: str | Path, steps: int | None = None, tokenizer: str = "vqkd") -> None:
    """Raise a one-line SemtokError unless ``out`` can be the demo's folder, ``steps`` is None or >= 1 and
    ``tokenizer`` is one of :data:`TOKENIZERS`."""
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


def run_demo(
    out: str | Path,
    steps: int | None = None,
    progress: bool = True,
    fid: bool = True,
    tokenizer: str = "vqkd",
) -> Path:
    """Run (or finish) the demo into ``out``; returns the path of ``report.md``.

    ``steps``: train every stage for this many steps (default: each config's own; the Cluster build has none);
    ``fid``: False skips the Inception metrics (rFID, gFID, precision/recall), the slowest part on a CPU;
    ``tokenizer``: ``"vqkd"`` (``vqkd-mnist``) or ``"cluster"`` (``cluster-mnist``), a key of :data:`TOKENIZERS`.
    """
    check_demo_inputs(out, steps, tokenizer)

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
    step_override = [f"train.steps={steps}"] if steps else []
    timings: dict[str, float] = {}
    started = time.time()

    tokenizer_run = out / tokenizer
    _stage(
        tokenizer,
        tokenizer_run,
        tokenizer_run / "tokenizer" / "model.safetensors",
        lambda resume: train_tokenizer(tokenizer, tokenizer_run, step_override, resume, progress),
        timings,
    )
    _stage(
        "decoder",
        out / "decoder",
        out / "decoder" / "tokenizer" / "model.safetensors",
        lambda resume: train(
            "decoder",
            load_config(
                DecoderRunConfig, "decoder-vqkd-mnist", [f"tokenizer={tokenizer_run}", *step_override]
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
                ]
                + step_override,
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
            load_config(JudgeRunConfig, "judge-mnist", step_override),
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
        out, recon, generation, ar_summary, judge_summary, grids, sampling, timings, tokenizer
    )
    print(f"demo finished in {time.time() - started:.0f} s; report: {report.resolve()}")
    return report


def train_tokenizer(kind: str, run: Path, step_override: list[str], resume: bool, progress: bool) -> None:
    """The demo's tokenizer into ``run`` (``run/tokenizer`` afterwards): the Cluster build (``cluster-mnist``,
    teacher features not kept; it has no steps and no checkpoint, so an interrupted build starts again) or VQ-KD
    training (``vqkd-mnist``, ``step_override`` applied, resumed from its checkpoint when ``resume``)."""
    if kind == "cluster":
        from semtok.tokenizers.cluster_build import ClusterRunConfig, build_cluster_tokenizer

        config = load_config(ClusterRunConfig, "cluster-mnist", ["build.keep_features=false"])
        build_cluster_tokenizer(config, run, progress)
    else:
        from semtok.training import train
        from semtok.training.vqkd import VQKDRunConfig

        train("vqkd", load_config(VQKDRunConfig, "vqkd-mnist", step_override), run, resume, progress)


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
) -> Path:
    """``OUT/report.md``: the metrics table, the reconstruction grid and one sample grid per class;
    ``tokenizer_kind``: the key of :data:`TOKENIZERS` the demo ran with."""
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
        f"Stage times this run (s): {json.dumps(timings) if timings else 'all stages reused'}.",
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
        "(500 samples, one per val label, against the 500 val images); the demo trains longer (its budget above), "
        "so compare its row with the suite's row of the same tokenizer as a budget effect, and the suite's rows "
        "with each other as the paper's comparison (`make bench`, `benchmarks/RESULTS.md`).",
        "",
    ]
    return lines
