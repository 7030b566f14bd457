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
    return "; ".join(
        f'{i + 1}. "{prompt}"{" (held-out pair)" if held else ""}'
        for i, (prompt, held) in enumerate(zip(prompts, held_out, strict=True))
    )


def t2i_blocks(out: Path, results: dict[str, Any]) -> list[Block]:
    """The section: the table, the sentence on what was measured, the sample grids with their prompts (nothing when
    the suite has no main row; one line when the branch was skipped)."""
    main = {name: row for name, row in results["rows"].items() if not row.get("ablation")}
    t2i = results.get("t2i") or {}
    if not main:
        return []
    if not t2i.get("enabled"):
        return [("h2", TITLE), ("p", "Skipped in this run (run_suite(t2i=False) / semtok bench --no-t2i).")]
    judge = t2i.get("judge") or {}
    held_pairs = ", ".join(f"{digit} {colour}" for digit, colour in t2i.get("held_out_pairs", []))
    seeds = next(iter(main.values())).get("seeds")
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
            "compositional question). Mean ± standard deviation over the sampling seeds "
            f"{seeds}. Chance level: a sample that ignores its prompt. No CLIP score: the suite has no CLIP "
            "weights offline.",
        ),
    ]
    prompts, held_out = t2i.get("prompts") or [], t2i.get("prompt_held_out") or []
    grids = [(name, row) for name, row in main.items() if (out / name / "t2i" / "samples.png").exists()]
    if grids:
        blocks.append(
            (
                "p",
                "Sample grids: one image per prompt, seed 0, CFG 1.75, top-k 600, top-p 0.92; row 1 seen (digit, "
                f"colour) pairs, row 2 the same digits and sizes in their held-out colour. Prompts: "
                f"{_prompt_list(prompts, held_out)}.",
            )
        )
    for name, row in grids:
        caption = f"{row['label']}, text AR on its captioned tokens"
        if row.get("t2i_prompts") not in (None, prompts):  # a grid kept from a run with other prompts
            caption += ": " + "; ".join(f'"{p}"' for p in row["t2i_prompts"])
        blocks.append(("img", (out / name / "t2i" / "samples.png", caption)))
    return blocks
