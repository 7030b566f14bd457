"""The report's text-to-image blocks: the FID_T2I / prompt-adherence table with its chance levels, what was measured,
and each main row's sample grid with its prompts (:mod:`semtok.pipelines.suite_t2i`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from semtok.pipelines.report import Block, fmt, mean_std

TITLE = "Text-to-image (captioned MNIST)"
# (results key after "t2i_", header, digits)
T2I_COLUMNS = (
    ("gfid", "FID_T2I", 2),
    ("prompt_all_seen", "all attributes (seen pairs)", 3),
    ("prompt_all_held_out", "all attributes (held-out pairs)", 3),
    ("prompt_digit_seen", "digit (seen)", 3),
    ("prompt_colour_seen", "colour (seen)", 3),
    ("prompt_size_seen", "size (seen)", 3),
)


def t2i_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """One line per main row (mean ± spread over the seeds), then the chance level of every adherence column."""
    header = ["tokenizer", *(name for _, name, _ in T2I_COLUMNS)]
    rows = [
        [row["label"], *(mean_std(row, f"t2i_{key}", digits) for key, _, digits in T2I_COLUMNS)]
        for row in results["rows"].values()
        if not row.get("ablation")
    ]
    chance = (results.get("t2i") or {}).get("chance")
    if chance:
        rows.append(
            ["chance level", "–"]
            + [fmt(chance[key.split("_")[1]]) for key, _, _ in T2I_COLUMNS if key.startswith("prompt_")]
        )
    return header, rows


def _prompt_list(prompts: list[str], held_out: list[bool]) -> str:
    held_out = list(held_out) + [False] * (len(prompts) - len(held_out))
    return "; ".join(
        f'{i + 1}. "{prompt}"{" (held-out pair)" if held else ""}'
        for i, (prompt, held) in enumerate(zip(prompts, held_out))
    )


def t2i_blocks(out: Path, results: dict[str, Any]) -> list[Block]:
    """The section: the table, the sentence on what was measured, the sample grids (seed-0 chains) each with its
    16 prompts (nothing when the suite has no main row; "not run yet" when the branch has no results)."""
    main = {name: row for name, row in results["rows"].items() if not row.get("ablation")}
    t2i = results.get("t2i") or {}
    if not main:
        return []
    if not t2i.get("enabled") or all(row.get("t2i_gfid") is None for row in main.values()):
        return [("h2", TITLE), ("p", "Not run yet (semtok bench --parts t2i; skipped by --no-t2i).")]
    judge = t2i.get("judge") or {}
    held_pairs = ", ".join(f"{digit} {colour}" for digit, colour in t2i.get("held_out_pairs", []))
    seeds = results.get("budget", {}).get("train_seeds")
    branches = max(len(row.get("t2i_gfid_per_seed") or []) for row in main.values())
    spread = (
        f"Mean ± standard deviation over the training seeds {seeds} (each chain's branch trained under its "
        "seed, sampled under the same seed)."
        if branches > 1
        else f"One training seed per row so far (the suite's seeds are {seeds}): no spread yet."
    )
    blocks: list[Block] = [
        ("h2", TITLE),
        ("table", t2i_table(results)),
        (
            "p",
            "Each main row's tokenizer is trained again (same kind, config and step budget) on "
            f"{t2i.get('dataset')}: coloured, sized MNIST-5k digits with captions (4500 train / 500 val); the train "
            f"split never shows the held-out (digit, colour) pairs ({held_pairs}). A text AR model (t2i-mnist: "
            "frozen all-MiniLM-L6-v2 prompt states as a 16-token prefix, caption dropout 0.1 for guidance) trains "
            f"{results['budget'].get('t2i_steps')} steps on its tokens. FID_T2I: gFID of one sample per val caption "
            "against the val images. Prompt adherence: the share of samples whose digit (a judge trained on the "
            f"captioned train split, val top-1 {fmt(judge.get('val_top1'))}), colour (read from the pixels) and "
            "size (from the ink bounding box) match their caption; all attributes = all three at once; seen / "
            "held-out: val captions whose (digit, colour) pair the train split shows / never shows (the "
            f"compositional question). {spread} Chance level: a sample that ignores its prompt. No CLIP score: "
            "the suite has no CLIP weights offline.",
        ),
    ]
    prompts, held_out = t2i.get("prompts") or [], t2i.get("prompt_held_out") or []
    grids = [(name, row) for name, row in main.items() if grid_path(out, name).exists()]
    if not grids:
        return blocks + [("p", "Sample grids: not run yet.")]
    blocks += [
        (
            "p",
            "Sample grids (seed-0 chain): one image per prompt, sampling seed 0, CFG 1.75, top-k 600, top-p 0.92; "
            "row 1 seen (digit, colour) pairs, row 2 the same digits and sizes in their held-out colour, as in "
            "this table of the 16 prompts:",
        ),
        ("table", prompt_table(prompts, held_out)),
    ]
    for name, row in grids:
        shown = row.get("t2i_prompts") or prompts  # a grid kept from a run with other prompts lists its own
        caption = f"{row['label']}, text AR on its captioned tokens; prompts: {_prompt_list(shown, held_out)}"
        blocks.append(("img", (grid_path(out, name), caption)))
    return blocks


def grid_path(out: Path, name: str) -> Path:
    """The text-to-image sample grid of a main row (its seed-0 chain)."""
    return out / name / "seed0" / "t2i" / "samples.png"


def prompt_table(
    prompts: list[str], held_out: list[bool], per_row: int = 8
) -> tuple[list[str], list[list[str]]]:
    """The prompts laid out as the sample grid is: ``per_row`` columns, one table row per grid row."""
    header = ["grid row", *(f"column {j + 1}" for j in range(per_row))]
    rows = []
    for start in range(0, len(prompts), per_row):
        part = "held-out pairs" if all(held_out[start : start + per_row]) else "seen pairs"
        rows.append([f"{start // per_row + 1} ({part})", *prompts[start : start + per_row]])
    return header, rows
