"""The paper's comparison at small scale (``semtok bench --suite mnist`` / ``make bench``).

Every tokenizer (VQGAN, FSQ, CVQ-VAE, VQ-KD, Cluster; plus the teacher ablation: VQ-KD with EfficientNet-Lite2 and
with a randomly initialised Lite0) is trained with the same step budget, gets a pixel decoder where it needs one,
and both families of proposal network are trained on its tokens with the same budget: the AR model (``ar-mnist``)
and the masked MaskGIT / MAGE model (``nar-mnist``). Each row is run once per training seed S of
``Budget.train_seeds`` (a *chain*: every training stage with ``train.seed=S``, the Cluster build with
``build.seed=S``, its generation metrics with sampling seed S), and its numbers are the mean ± sample sd over the
chains: codebook usage, perplexity, rFID, PSNR, SSIM, linear probe, then, for each family, gFID / precision /
recall / class accuracy (the paper's FID_AR and FID_NAR). The five main rows also ask the text-to-image question
(:mod:`semtok.pipelines.suite_t2i`: the same tokenizer on captioned MNIST, a text AR model, FID_T2I and prompt
adherence on seen and held-out (digit, colour) pairs), once per chain too. The budget sweep (:data:`SWEEP_ROWS`)
trains the seed-0 chain of VQGAN, VQ-KD and Cluster again with the tokenizer-side budget scaled by each multiplier
of ``Budget.sweep`` (AR model and its metrics only) and draws gFID and class accuracy against tokenizer-side steps
and seconds.

``run_suite(parts=...)`` / ``semtok bench --parts main,sweep`` runs the parts in this order: the judge, ``main``
(the main rows, every seed, AR + masked), ``sweep``, ``ablation`` (the ablation rows, every seed), ``t2i`` (the
main rows' text-to-image branch, every seed); the report shows whatever has results ("not run yet" elsewhere).

Layout of ``OUT`` (every stage is reused when its output exists, so a rerun after a crash continues; a chain whose
metric JSONs all exist needs no model file at all: its training stages are skipped and it is only collected):
  judge/                          the judge classifier (shared by every row)
  ROW/seed{S}/                    one chain per training seed S:
    tokenizer_run/                tokenizer training (or the Cluster build)
    decoder_run/                  pixel decoder (feature tokenizers)
    eval_val.json                 reconstruction metrics;  probe_val.json  linear probe
    tokens/{train,val}.json       token files;  ar_run/  the AR model;  nar_run/  the masked model
    generation_seed{S}.json       AR generation metrics (sampling seed S);  nar_generation_seed{S}.json  masked
    samples/class_{k}.png         AR sample grids, nar_samples/class_{k}.png masked ones (seed 0's chain only)
    t2i/                          main rows: tokenizer_run/, decoder_run/, tokens/, ar_run/ (the text AR model),
                                  generation_seed{S}.json, samples.png (seed 0's chain; 16 prompts: 8 seen, 8
                                  held-out pairs)
    times.json                    seconds per stage, t2i_* for the text-to-image branch
  sweep/ROW/x{STEPS}/             a sweep point (ROW in SWEEP_ROWS, STEPS = the scaled tokenizer steps): the same
                                  chain layout (seed 0), AR only, no grids; the multiplier-1 point is ROW/seed0
  judge_captioned/                the judge of the captioned data (shared by every row's text-to-image branch)
  results.json, report.md, report.html, sweep_curves.png, figures/
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from semtok.config import load_config
from semtok.errors import SemtokError
from semtok.pipelines.stages import Stages, resume_train, write_json
from semtok.pipelines.suite_collect import (  # noqa: F401 - the suite's public names
    _summary,
    collect_chain,
    collect_row,
    generation_stats,
    stats,
)
from semtok.pipelines.suite_keep import keep_results, restore_results
from semtok.pipelines.suite_rows import (  # noqa: F401 - the suite's public names
    CHAIN_KEYS,
    FEATURE_KINDS,
    GENERATION_KEYS,
    GENERATORS,
    LABELS,
    PARTS,
    ROWS,
    SAMPLES_PER_CLASS,
    SUITES,
    SWEEP_ROWS,
    Budget,
    chain_dir,
    kmeans_iters,
    scaled,
)
from semtok.pipelines.suite_sweep import collect_sweep, run_sweep, sweep_dir  # noqa: F401
from semtok.pipelines.suite_train import (  # noqa: F401 - the suite's public names
    generator_stages,
    grid_paths,
    train_decoder,
    train_tokenizer,
)


def chain_outputs(chain: Path, seed: int, families: tuple[str, ...]) -> dict[str, list[Path]]:
    """The metric JSONs of a chain's parts: ``tokenizer`` (reconstruction, probe) and each family of ``families``
    (its training summary, its generation metrics of sampling seed ``seed``). A part whose files all exist needs
    no model file: a chain kept with its JSON files only is collected, not trained again."""
    outputs = {"tokenizer": [chain / "eval_val.json", chain / "probe_val.json"]}
    for family in families:
        prefix = GENERATORS[family][1]
        outputs[family] = [
            chain / f"{family}_run" / "summary.json",
            chain / f"{prefix}generation_seed{seed}.json",
        ]
    return outputs


def pending_parts(chain: Path, seed: int, families: tuple[str, ...], grids: bool) -> list[str]:
    """The parts of a chain with work left: a metric JSON missing, or (``grids``) a sample grid missing while its
    model is there to draw it (a chain kept without its models is not trained again for pictures)."""
    pending = [
        p for p, paths in chain_outputs(chain, seed, families).items() if not all(f.exists() for f in paths)
    ]
    for family in families if grids else ():
        model = chain / f"{family}_run" / family / "model.safetensors"
        prefix = GENERATORS[family][1]
        if (
            family not in pending
            and model.exists()
            and not all(g.exists() for g in grid_paths(chain, prefix))
        ):
            pending.append(family)
    return pending


def run_chain(
    row: str,
    chain: Path,
    budget: Budget,
    judge_dir: Path,
    progress: bool,
    seed: int = 0,
    families: tuple[str, ...] = tuple(GENERATORS),
    grids: bool = True,
    scale: float = 1.0,
) -> None:
    """One chain of ``row`` into ``chain``: tokenizer (+ decoder), evaluation, tokens, probe, then each proposal
    network of ``families`` with its generation metrics (sampling seed ``seed``) and, with ``grids``, its class
    sample grids; every training stage under ``train.seed=seed``; ``scale``: the sweep multiplier of the
    tokenizer-side budget. Nothing runs when no part has work left (:func:`pending_parts`); else every stage is
    reused when its output exists."""
    from semtok.evaluation.probe import probe_token_files
    from semtok.evaluation.tokenizer import evaluate_tokenizer
    from semtok.pipelines.tokenize import tokenize_dataset

    pending = pending_parts(chain, seed, families, grids)
    if not pending:
        return
    kind = ROWS[row][0]
    stages = Stages(chain)
    tokenizer_run = chain / "tokenizer_run"
    stages.run(
        "tokenizer",
        tokenizer_run / "tokenizer" / "model.safetensors",
        lambda: train_tokenizer(row, tokenizer_run, budget, progress, seed=seed, scale=scale),
    )
    final = tokenizer_run
    if kind in FEATURE_KINDS:
        final = chain / "decoder_run"
        stages.run(
            "decoder",
            final / "tokenizer" / "model.safetensors",
            lambda: train_decoder(tokenizer_run, final, budget, progress, seed=seed, scale=scale),
        )
    tokenizer_dir = final / "tokenizer"
    stages.run(
        "evaluate",
        chain / "eval_val.json",
        lambda: write_json(
            chain / "eval_val.json",
            evaluate_tokenizer(tokenizer_dir, "mnist5k", "val", progress=progress, limit=budget.eval_images),
        ),
    )
    for split in ("train", "val"):
        manifest = chain / "tokens" / f"{split}.json"
        stages.run(
            f"tokenize_{split}",
            manifest,
            lambda split=split, manifest=manifest: tokenize_dataset(
                tokenizer_dir, "mnist5k", split, manifest, progress=progress
            ),
        )
    tokens = chain / "tokens"
    stages.run(  # the probe reads the token files: no second pass of the encoder over the images
        "probe",
        chain / "probe_val.json",
        lambda: write_json(
            chain / "probe_val.json",
            probe_token_files(tokenizer_dir, tokens / "train.json", tokens / "val.json"),
        ),
    )
    for family in families:
        if family in pending:
            generator_stages(family, chain, stages, budget, (seed,), judge_dir, progress, grids)


def run_row(
    row: str,
    out: Path,
    budget: Budget,
    judge_dir: Path,
    progress: bool,
    t2i_judge: Path | None = None,
    chains: bool = True,
    seeds: tuple[int, ...] | None = None,
) -> dict[str, Any]:
    """Every chain of one row (one per training seed of ``seeds``, default ``budget.train_seeds``;
    ``chains=False``: none); with ``t2i_judge`` (the
    captioned data's judge run) a main row's chains also run their text-to-image branch
    (:func:`semtok.pipelines.suite_t2i.t2i_stages`); returns the row's results (:func:`collect_row`)."""
    from semtok.pipelines.suite_t2i import t2i_stages

    ablation = ROWS[row][3]
    seeds = budget.train_seeds if seeds is None else seeds
    for seed in seeds if chains else ():
        run_chain(row, chain_dir(out, row, seed), budget, judge_dir, progress, seed, grids=seed == 0)
    if t2i_judge is not None and not ablation:
        for seed in seeds:
            chain = chain_dir(out, row, seed)
            t2i_stages(row, chain, Stages(chain), budget, t2i_judge, progress, seed=seed, grid=seed == 0)
    return collect_row(row, out / row, budget.train_seeds)


def parse_parts(parts: tuple[str, ...] | list[str] | str) -> tuple[str, ...]:
    """The suite parts to run (a comma list or a sequence of :data:`PARTS`), in :data:`PARTS` order."""
    names = [p.strip() for p in parts.split(",")] if isinstance(parts, str) else list(parts)
    unknown = [p for p in names if p not in PARTS]
    if unknown or not names:
        raise SemtokError(f"parts: expected a comma list of {list(PARTS)}, got {unknown or names}")
    return tuple(p for p in PARTS if p in names)


def run_suite(
    suite: str,
    out: str | Path,
    rows: list[str] | None = None,
    progress: bool = False,
    t2i: bool = True,
    parts: tuple[str, ...] | list[str] | str = PARTS,
    kept: str | Path | None = None,
    collect_only: bool = False,
    seeds: tuple[int, ...] | list[int] | None = None,
) -> Path:
    """Run (or continue) a suite into ``out``; writes results.json, report.md, report.html (and sweep_curves.png
    when the sweep has points); returns report.md.

    ``parts`` (of :data:`PARTS`, run in this order after the judge): ``main`` (every main row's chains, AR and
    masked), ``sweep`` (:func:`run_sweep` for the rows of :data:`SWEEP_ROWS`), ``ablation`` (the ablation rows'
    chains), ``t2i`` (the main rows' text-to-image branch, :mod:`semtok.pipelines.suite_t2i`, every chain).
    ``t2i=False`` drops the ``t2i`` part. ``rows`` limits every part to those rows; results.json and the report
    collect every row and sweep point that ``out`` holds (runs of other rows, parts not run now, kept results).
    ``kept``: a folder of kept results (:mod:`semtok.pipelines.suite_keep`): restored into ``out`` first, and every finished chain, sweep point and
    judge is kept there after each row and at the end. ``collect_only``: train and evaluate nothing, only collect
    what ``out`` (and ``kept``) hold into results.json and the report (the report of a suite run in part).
    ``seeds``: run only the chains of these training seeds (of ``Budget.train_seeds``; default all) in the main,
    ablation and t2i parts, e.g. the t2i branch of seed 0 first; every chain found is still collected."""
    from semtok.pipelines.machine import machine_info
    from semtok.pipelines.report import write_report
    from semtok.pipelines.suite_t2i import captioned_judge, t2i_pending, t2i_results
    from semtok.training import train
    from semtok.training.judge import JudgeRunConfig
    from semtok.visual.sweep_curves import plot_sweep

    if suite not in SUITES:
        raise SemtokError(f"suite: expected one of {list(SUITES)}, got {suite!r}")
    rows = rows or list(ROWS)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise SemtokError(f"rows: unknown {unknown} (known: {list(ROWS)})")
    parts = () if collect_only else tuple(p for p in parse_parts(parts) if t2i or p != "t2i")
    budget = SUITES[suite]
    run_seeds = budget.train_seeds if seeds is None else tuple(seeds)
    if not run_seeds or any(s not in budget.train_seeds for s in run_seeds):
        raise SemtokError(
            f"seeds: expected training seeds of suite {suite} {list(budget.train_seeds)}, got {seeds}"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if kept is not None:
        print(f"restored {restore_results(kept, out)} kept files from {kept}")
    started = time.time()
    judge_run = out / "judge"
    judge_stage = Stages(out / "_shared")
    judge_config = load_config(JudgeRunConfig, "judge-mnist", [f"train.steps={budget.judge_steps}"])

    def judge() -> (
        Path
    ):  # trained when a chain has work left (a suite kept as JSON files needs no judge model)
        judge_stage.run(
            "judge",
            judge_run / "judge" / "model.safetensors",
            lambda: resume_train(
                judge_run, lambda resume: train("judge", judge_config, judge_run, resume, progress)
            ),
        )
        return judge_run

    if not (judge_run / "summary.json").exists() and parts:
        judge()
    main_rows = [r for r in rows if not ROWS[r][3]]
    ablation_rows = [r for r in rows if ROWS[r][3]]
    results: dict[str, Any] = {
        "suite": suite,
        "budget": asdict(budget),
        "parts": list(parts),
        "machine": machine_info(),
        "judge": _summary(judge_run / "summary.json"),
        "t2i": t2i_results(_kept_judge(out, main_rows)),
        "rows": {},
        "sweep": {},
    }

    def save() -> None:
        # every row and sweep point in ``out`` is collected, not only those of ``rows`` (which limits what runs):
        # a run that adds one row to a suite kept in part leaves the suite's whole results.json and report
        results["rows"] = {
            r: row for r in ROWS if (row := collect_row(r, out / r, budget.train_seeds))["chains"]
        }
        results["sweep"] = {r: points for r in SWEEP_ROWS if (points := collect_sweep(r, out, budget))}
        write_json(out / "results.json", results)
        if kept is not None:
            keep_results(out, kept, budget)

    def row_chains(row: str) -> None:
        if any(pending_parts(chain_dir(out, row, s), s, tuple(GENERATORS), s == 0) for s in run_seeds):
            run_row(row, out, budget, judge(), progress, seeds=run_seeds)

    if "main" in parts:
        for row in main_rows:
            row_chains(row)
            save()
    if "sweep" in parts:
        for row in (r for r in SWEEP_ROWS if r in rows):
            if any(pending_parts(sweep_dir(out, row, budget, m), 0, ("ar",), False) for m in budget.sweep):
                run_sweep(row, out, budget, judge(), progress)
            save()
    if "ablation" in parts:
        for row in ablation_rows:
            row_chains(row)
            save()
    t2i_rows = [r for r in main_rows if "t2i" in parts and t2i_pending(out / r, run_seeds)]
    if t2i_rows:
        t2i_judge = captioned_judge(out, budget, judge_stage, progress)
        results["t2i"] = t2i_results(t2i_judge)
        for row in t2i_rows:
            run_row(row, out, budget, judge_run, progress, t2i_judge, chains=False, seeds=run_seeds)
            save()
    save()
    if results["sweep"]:
        plot_sweep(results["sweep"], LABELS, out / "sweep_curves.png")
    results["wall_seconds_this_run"] = round(time.time() - started, 1)
    sweep_seconds = [
        sum(_summary(out / p["dir"] / "times.json").values())
        for points in results["sweep"].values()
        for p in points
        if not p["dir"].endswith("seed0")  # the multiplier-1 point is counted with its row
    ]
    results["stage_seconds_total"] = round(
        sum(sum(r["times"].values()) for r in results["rows"].values())
        + sum(sweep_seconds)
        + sum(judge_stage.times.values()),
        1,
    )
    write_json(out / "results.json", results)
    report = write_report(out, results)
    if kept is not None:
        print(f"kept {keep_results(out, kept, budget)} files in {kept}")
    print(f"report: {report.resolve()} (and {report.with_suffix('.html').name})")
    return report


def _kept_judge(out: Path, main_rows: list[str]) -> Path | None:
    """The captioned judge of an earlier run whose text-to-image results are kept (None when none ran, or no main
    row is asked for)."""
    judge = out / "judge_captioned"
    return judge if main_rows and (judge / "summary.json").exists() else None
