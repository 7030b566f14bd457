"""The bench suite's text-to-image branch: does an image-understanding tokenizer make text-to-image better?

Each main row (VQGAN, FSQ, CVQ-VAE, VQ-KD, Cluster; not the teacher ablation) asks the paper's question a second way,
in each of its chains, under ``ROW/seed{S}/t2i/`` (training seed S; every stage reused when its output exists):
  tokenizer_run/, decoder_run/   the row's tokenizer (same kind, config, overrides, ``tokenizer_steps``) trained on
                                 ``mnist5k-captioned``; VQ-KD / Cluster also get their pixel decoder on it
  tokens/{train,val}.json        its token files, each with the captions side file
  ar_run/                        the text AR model (``t2i-mnist``: frozen MiniLM-L6 prompt prefix, caption dropout
                                 0.1; ``Budget.t2i_steps`` steps)
  generation_seed{S}.json        sampling seed S: FID_T2I (samples of the val captions against the val images),
                                 precision / recall and prompt adherence (digit by ``OUT/judge_captioned``, colour
                                 from the pixels, size from the ink box; on seen and held-out (digit, colour) pairs)
  samples.png (+ samples.json)   seed 0's chain only: one image per prompt of :data:`PROMPTS`: 8 seen pairs, then
                                 8 held-out ones
Stage seconds go to ``ROW/seed{S}/times.json`` as ``t2i_*``; the captioned judge's to ``OUT/_shared/times.json``.

Cost: per main row a second tokenizer (and decoder) training and tokenization, a text AR model of ``t2i_steps``
(1500 in the mnist suite: about 4x the class-conditional AR stage; 40 in quick) and one generation evaluation per
training seed, plus one judge: roughly the time of the class-conditional main rows again. ``run_suite(t2i=False)`` /
``semtok bench --no-t2i`` (or ``--parts`` without ``t2i``) skips it (the ``t2i_*`` results are then None).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from semtok.config import load_config
from semtok.data.captioned_mnist import COLOUR_NAMES, HELD_OUT, SIZES, Attributes, caption_for
from semtok.pipelines.stages import Stages, generation_seed_stages, resume_train
from semtok.pipelines.suite import (
    FEATURE_KINDS,
    ROWS,
    Budget,
    generation_stats,
    train_decoder,
    train_tokenizer,
)

CAPTIONED = "mnist5k-captioned"
# Every pixel loss on the captioned data is without the perceptual term: with it (EfficientNet-Lite0 features,
# weight 1.0) the pixel decoders of VQ-KD and FSQ rendered every digit in one teal at 600 steps (colour of the
# reconstructions right on 16 % of val images, chance 1/6); with the L1 / MSE term alone 89 % (VQ-KD's decoder) and
# 66 % (FSQ). Measured on this CPU box, see benchmarks/RESULTS.md.
NO_PERCEPTUAL = ("loss.perceptual_weight=0",)


def pixel_loss(row: str) -> tuple[str, ...]:
    """The overrides of a row's tokenizer on the captioned data: no perceptual loss for a pixel tokenizer."""
    return () if ROWS[row][0] in FEATURE_KINDS else NO_PERCEPTUAL


# the text model's generation metrics (keys of evaluate_generation's result for a text run) kept per seed
ATTRIBUTES = ("digit", "colour", "size", "all")
T2I_KEYS: tuple[str, ...] = (
    "gfid",
    "precision",
    "recall",
    *(f"prompt_{a}_{part}" for part in ("seen", "held_out") for a in ATTRIBUTES),
    "prompt_all",
)


def _prompt_attributes() -> list[tuple[Attributes, bool]]:
    """Digits 0-7 with a colour the train split shows them in, then the same digits (same sizes: large for even
    digits) in their held-out colour; each with whether its (digit, colour) pair is held out."""
    held = dict(HELD_OUT)  # one held-out colour per digit
    seen, unseen = [], []
    for digit in range(8):
        size = "large" if digit % 2 == 0 else "small"
        rotated = COLOUR_NAMES[digit % len(COLOUR_NAMES) :] + COLOUR_NAMES[: digit % len(COLOUR_NAMES)]
        colour = next(c for c in rotated if (digit, c) not in HELD_OUT)
        seen.append((Attributes(digit, colour, size), False))
        unseen.append((Attributes(digit, held[digit], size), True))
    return seen + unseen


PROMPT_ATTRIBUTES = _prompt_attributes()
PROMPTS: list[str] = [caption_for(attributes) for attributes, _ in PROMPT_ATTRIBUTES]  # "a large red 0"
PROMPT_HELD_OUT: list[bool] = [held for _, held in PROMPT_ATTRIBUTES]


def chance_levels() -> dict[str, float]:
    """Prompt adherence of samples that ignore the prompt (uniform over the attributes): all 1/120, digit 1/10..."""
    colours, sizes = len(COLOUR_NAMES), len(SIZES)
    return {"all": 1 / (10 * colours * sizes), "digit": 0.1, "colour": 1 / colours, "size": 1 / sizes}


def captioned_judge(out: Path, budget: Budget, stages: Stages, progress: bool) -> Path:
    """The judge of the captioned data (``judge-mnist`` on ``mnist5k-captioned``, no augmentation: a crop would
    change the size), shared by every row: trained into ``out/judge_captioned`` unless there; returns that run."""
    from semtok.training import train
    from semtok.training.judge import JudgeRunConfig

    run_dir = out / "judge_captioned"
    config = load_config(
        JudgeRunConfig,
        "judge-mnist",
        [f"data.dataset={CAPTIONED}", "data.augment=none", f"train.steps={budget.judge_steps}"],
    )
    stages.run(
        "judge_captioned",
        run_dir / "judge" / "model.safetensors",
        lambda: resume_train(run_dir, lambda resume: train("judge", config, run_dir, resume, progress)),
    )
    return run_dir


def chain_t2i_pending(chain: Path, seed: int, grid: bool) -> bool:
    """Whether the branch of a chain has work left: a metric JSON (generation metrics of sampling seed ``seed``,
    the text model's summary) missing, or (``grid``) ``samples.png`` missing while the text model is there."""
    t2i = chain / "t2i"
    finals = [t2i / f"generation_seed{seed}.json", t2i / "ar_run" / "summary.json"]
    drawable = (t2i / "ar_run" / "ar" / "model.safetensors").exists() and not (t2i / "samples.png").exists()
    return not all(p.exists() for p in finals) or (grid and drawable)


def t2i_pending(row_dir: Path, seeds: tuple[int, ...]) -> bool:
    """Whether the branch of any chain ``row_dir/seed{S}`` has work left (:func:`chain_t2i_pending`)."""
    return any(chain_t2i_pending(row_dir / f"seed{seed}", seed, seed == 0) for seed in seeds)


def t2i_stages(
    row: str,
    row_dir: Path,
    stages: Stages,
    budget: Budget,
    judge: Path,
    progress: bool,
    seed: int = 0,
    grid: bool = True,
) -> None:
    """The text-to-image branch of main row ``row`` into ``row_dir/t2i`` (the layout of the module docstring),
    every stage timed by ``stages`` as ``t2i_*`` and skipped when its output exists; ``judge``: the captioned
    judge run (:func:`captioned_judge`). ``row_dir``: a chain of training seed ``seed`` (every training stage
    under it, the generation metrics under sampling seed ``seed``); ``grid``: also ``samples.png``. Nothing runs
    when the branch's metric JSONs (generation metrics, the text model's summary) exist, unless the grid is
    missing and its model is there."""
    from semtok.generators.sampler import Sampler
    from semtok.generators.sampling import SamplingConfig
    from semtok.pipelines.tokenize import tokenize_dataset
    from semtok.training import train
    from semtok.training.ar import ARRunConfig
    from semtok.visual.provenance import write_samples

    t2i = row_dir / "t2i"
    if not chain_t2i_pending(row_dir, seed, grid):
        return  # kept metrics (and no grid left to draw): no model file needed
    tokenizer_run = t2i / "tokenizer_run"
    stages.run(
        "t2i_tokenizer",
        tokenizer_run / "tokenizer" / "model.safetensors",
        lambda: train_tokenizer(row, tokenizer_run, budget, progress, CAPTIONED, pixel_loss(row), seed),
    )
    final = tokenizer_run
    if ROWS[row][0] in FEATURE_KINDS:
        final = t2i / "decoder_run"
        stages.run(
            "t2i_decoder",
            final / "tokenizer" / "model.safetensors",
            lambda: train_decoder(tokenizer_run, final, budget, progress, CAPTIONED, NO_PERCEPTUAL, seed),
        )
    tokens = t2i / "tokens"
    for split in ("train", "val"):
        manifest = tokens / f"{split}.json"
        stages.run(
            f"t2i_tokenize_{split}",
            manifest,
            lambda split=split, manifest=manifest: tokenize_dataset(
                final / "tokenizer", CAPTIONED, split, manifest, progress=progress
            ),
        )
    run_dir = t2i / "ar_run"
    config = load_config(
        ARRunConfig,
        "t2i-mnist",
        [
            f"data.tokens={tokens / 'train.json'}",
            f"data.val_tokens={tokens / 'val.json'}",
            f"train.steps={budget.t2i_steps}",
            f"train.seed={seed}",
        ],
    )
    stages.run(
        "t2i_ar",
        run_dir / "ar" / "model.safetensors",
        lambda: resume_train(run_dir, lambda resume: train("ar", config, run_dir, resume, progress)),
    )
    sampling = SamplingConfig()
    generation_seed_stages(
        stages, run_dir, CAPTIONED, judge, (seed,), budget.eval_images, progress, t2i, "", "t2i_"
    )
    if not grid:
        return
    samples = t2i / "samples.png"
    stages.run(
        "t2i_samples",
        samples,
        lambda: write_samples(Sampler(run_dir), None, samples, sampling, seed=0, per_row=8, prompts=PROMPTS),
    )


def collect_t2i(row_dir: Path, seeds: tuple[int, ...]) -> dict[str, Any]:
    """The text-to-image numbers of a row from ``row_dir/t2i`` (None / [] where not run, as for ablation rows):
    ``t2i_gfid``, ``t2i_precision``, ``t2i_recall``, ``t2i_prompt_{digit,colour,size,all}_{seen,held_out}``,
    ``t2i_prompt_all`` (each with ``_std`` and ``_per_seed`` over ``seeds``), ``t2i_gfid_reference``,
    ``t2i_val_nll`` (the text AR model's val NLL) and ``t2i_prompts`` (the prompts of ``samples.png``, from its
    provenance)."""
    t2i = row_dir / "t2i"
    result = generation_stats(t2i, seeds, "", T2I_KEYS, key_prefix="t2i_")
    summary = t2i / "ar_run" / "summary.json"
    result["t2i_val_nll"] = json.loads(summary.read_text()).get("val_nll") if summary.exists() else None
    samples = t2i / "samples.json"
    result["t2i_prompts"] = json.loads(samples.read_text()).get("prompts") if samples.exists() else None
    return result


def t2i_results(judge: Path | None) -> dict[str, Any]:
    """The suite-level record of the branch for results.json: whether it ran (``judge`` None: skipped), the data
    set, the sample-grid prompts with their held-out flags, the chance levels, the captioned judge's summary."""
    summary = judge / "summary.json" if judge is not None else None
    return {
        "enabled": judge is not None,
        "dataset": CAPTIONED,
        "prompts": PROMPTS,
        "prompt_held_out": PROMPT_HELD_OUT,
        "held_out_pairs": sorted([digit, colour] for digit, colour in HELD_OUT),
        "chance": chance_levels(),
        "judge": json.loads(summary.read_text()) if summary is not None and summary.exists() else None,
    }
