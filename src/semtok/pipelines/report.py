"""The suite's report: one list of blocks (headings, text, tables, figures) rendered as report.md and report.html."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import torch

from semtok.pipelines.report_blocks import Block, fmt, mean_std  # noqa: F401 - report_t2i reads them here
from semtok.pipelines.report_sweep import sweep_blocks, sweep_table  # noqa: F401
from semtok.visual.image_rows import side_by_side, stack_images

DECODING_LABELS = (0, 2, 4, 6, 8)  # the masked-decoding picture's classes (modulo the model's), seed 0
NO_MODELS = "Not run yet, or not in this folder (no model files: the suite was kept as its metric files)."
GENERATION_COLUMNS = (("gfid", 2), ("precision", 3), ("recall", 3), ("class_accuracy", 3))


def results_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The suite table in the paper's Table 1 order: tokenizer, codebook, reconstruction, probe, then per proposal
    network (AR, then masked: NAR) its val NLL and generation metrics; every metric as mean ± sd over the row's
    training seeds (one chain each; column n: how many chains have results)."""
    header = [
        "tokenizer",
        "n",
        "codebook",
        "usage",
        "perplexity",
        "rFID",
        "PSNR",
        "SSIM",
        "probe top-1",
        "AR val NLL",
        "FID_AR",
        "precision (AR)",
        "recall (AR)",
        "class acc. (AR)",
        "NAR val NLL",
        "FID_NAR",
        "precision (NAR)",
        "recall (NAR)",
        "class acc. (NAR)",
        "minutes (all stages)",
    ]
    rows = []
    for row in results["rows"].values():
        rows.append(
            [
                row["label"],
                fmt(row.get("chains", len(row.get("seeds") or []))),
                fmt(row.get("codebook_size")),
                mean_std(row, "usage", 3),
                mean_std(row, "perplexity", 1),
                mean_std(row, "rfid", 2),
                mean_std(row, "psnr", 2),
                mean_std(row, "ssim", 3),
                mean_std(row, "probe_top1", 3),
                mean_std(row, "ar_val_nll", 3),
                *(mean_std(row, key, digits) for key, digits in GENERATION_COLUMNS),
                mean_std(row, "nar_val_masked_nll", 3),
                *(mean_std(row, f"nar_{key}", digits) for key, digits in GENERATION_COLUMNS),
                f"{sum(row['times'].values()) / 60:.1f}",
            ]
        )
    return header, rows


def stage_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Seconds per stage of each row, summed over its chains."""
    stages = sorted({name for row in results["rows"].values() for name in row["times"]})
    header = ["tokenizer", *stages]
    rows = [
        [row["label"], *(fmt(row["times"].get(s), 1) for s in stages)] for row in results["rows"].values()
    ]
    return header, rows


def seed0(out: Path, name: str) -> Path:
    """The seed-0 chain of row ``name`` (its pictures: grids, reconstructions, curves)."""
    return out / name / "seed0"


def final_tokenizer_run(out: Path, name: str) -> Path:
    """The run folder of the seed-0 chain's final tokenizer (the decoder run of a feature tokenizer)."""
    chain = seed0(out, name)
    return chain / ("decoder_run" if (chain / "decoder_run").exists() else "tokenizer_run")


def class_grids(chain: Path, prefix: str) -> list[Path]:
    """The class sample grids ``{prefix}samples/class_{k}.png`` of a chain, in class order."""
    grids = (chain / f"{prefix}samples").glob("class_*.png")
    return sorted(grids, key=lambda p: int(p.stem.split("_")[1]))


def sample_blocks(out: Path, results: dict[str, Any]) -> list[Block]:
    """Per row one picture: the AR model's class sample grids (left) beside the masked model's (right), seed-0
    chain, one row of 8 per class 0-9; a line for a row or family without grids yet."""
    fig_dir = out / "figures"
    blocks: list[Block] = [
        (
            "h2",
            "Samples: one row of 8 per class (0-9), CFG 1.75, top-k 600, top-p 0.92; left AR, right masked (NAR: 12 "
            "steps, cosine schedule); seed-0 chain",
        )
    ]
    missing = []
    for name, row in results["rows"].items():
        ar, nar = class_grids(seed0(out, name), ""), class_grids(seed0(out, name), "nar_")
        stacks = [
            stack_images(grids, fig_dir / f"{prefix}samples_{name}.png")
            for prefix, grids in (("", ar), ("nar_", nar))
            if grids
        ]
        if not stacks:
            missing.append(row["label"])
            continue
        path = side_by_side(stacks, fig_dir / f"samples_ar_nar_{name}.png") if len(stacks) == 2 else stacks[0]
        family = "AR (left) | masked NAR (right)" if len(stacks) == 2 else ("AR" if ar else "masked NAR")
        caption = f"{row['label']}: {family}" + ("" if len(stacks) == 2 else " (the other: not run yet)")
        blocks.append(("img", (path, caption)))
    if missing:
        blocks.append(("p", f"Sample grids not run yet: {', '.join(missing)}."))
    return blocks


def figures(out: Path, results: dict[str, Any]) -> list[Block]:
    """Reconstruction grids, sample grids (AR beside masked, a row of 8 per class), training curves, the codebook
    picture; each from the seed-0 chains, left out where neither the picture nor its model is there (a suite
    folder kept with its JSON files only)."""
    from semtok.data import build_dataset
    from semtok.tokenizers.base import Tokenizer
    from semtok.visual.codebook_picture import codebook_picture
    from semtok.visual.curves import plot_training_curves
    from semtok.visual.grids import reconstruction_grid, save_grid

    fig_dir = out / "figures"
    blocks: list[Block] = [
        ("h2", "Reconstructions (rows: val originals, then their reconstructions; seed-0 chain)")
    ]
    val = None
    for name, row in results["rows"].items():
        final = final_tokenizer_run(out, name)
        path = fig_dir / f"recon_{name}.png"
        if not path.exists() and (final / "tokenizer" / "model.safetensors").exists():
            tokenizer = Tokenizer.from_pretrained(final / "tokenizer")
            val = val or build_dataset("mnist5k", "val", tokenizer.config.image_size)
            images = torch.stack([val[i][0] for i in range(0, len(val), len(val) // 8)][:8])
            save_grid(reconstruction_grid(tokenizer, images), path)
        if path.exists():
            blocks.append(("img", (path, row["label"])))
    if len(blocks) == 1:
        blocks.append(("p", NO_MODELS))
    blocks += sample_blocks(out, results)
    blocks.append(("h2", "Training curves (seed-0 chains)"))
    curves = len(blocks)
    for family, key, title, caption in (
        ("tokenizer", None, "tokenizer training", "tokenizer training (each kind logs its own losses)"),
        (
            "ar",
            "loss/train_nll",
            "AR training",
            "AR training NLL (nats per token) on each tokenizer's tokens",
        ),
        (
            "nar",
            "loss/train_masked_ce",
            "NAR training",
            "masked-model training loss (label-smoothed nats per masked token) on each row's tokens",
        ),
    ):
        runs = {row["label"]: seed0(out, name) / f"{family}_run" for name, row in results["rows"].items()}
        runs = {label: run for label, run in runs.items() if (run / "log.jsonl").exists()}
        if runs:
            path = plot_training_curves(
                runs, fig_dir / f"curves_{family}.png", keys=[key] if key else None, title=title
            )
            blocks.append(("img", (path, caption)))
    if len(blocks) == curves:
        blocks.append(("p", NO_MODELS.replace("model files", "training logs")))
    blocks += masked_decoding_blocks(out, results)
    pair = {
        label: final_tokenizer_run(out, name)
        for name, label in (("vqkd", "VQ-KD"), ("vqgan", "VQGAN"))
        if name in results["rows"]
    }
    path = fig_dir / "codebook.png"
    if len(pair) == 2 and (
        path.exists() or all((run / "tokenizer" / "model.safetensors").exists() for run in pair.values())
    ):
        blocks.append(("h2", "Codebook picture: image patches assigned to a few codes"))
        if not path.exists():
            codebook_picture(pair, "mnist5k", path)
        blocks.append(
            (
                "img",
                (path, "the most used codes of each tokenizer, 8 val patches each (red: the token's cell)"),
            )
        )
    return blocks


def masked_decoding_blocks(out: Path, results: dict[str, Any]) -> list[Block]:
    """The masked-decoding picture of the VQ-KD row's masked model (seed-0 chain; else the first row that has one),
    5 samples."""
    from semtok.generators.sampler import Sampler
    from semtok.generators.sampling import SamplingConfig
    from semtok.visual.masked_decoding import masked_decoding_picture

    def picture(name: str) -> Path:
        return out / "figures" / f"masked_decoding_{name}.png"

    def run(
        name: str,
    ) -> Path:  # the seed-0 chain's masked model (a row folder of the one-seed layout: its own)
        chain = seed0(out, name)
        return (chain if chain.exists() or not (out / name / "nar_run").exists() else out / name) / "nar_run"

    def model(name: str) -> Path:
        return run(name) / "nar" / "model.safetensors"

    names = sorted(results["rows"], key=lambda n: n != "vqkd")  # vqkd first, the rest in table order
    name = next((n for n in names if picture(n).exists() or model(n).exists()), None)
    if name is None:
        return []
    sampling = SamplingConfig()
    path = picture(name)
    if not path.exists():
        sampler = Sampler(run(name))
        labels = torch.tensor(DECODING_LABELS) % max(sampler.num_classes, 1)
        masked_decoding_picture(sampler, labels, path, sampling)
    caption = (
        f"{results['rows'][name]['label']}, NAR: per column the tokens known after each of the {sampling.steps} "
        f"steps ({sampling.schedule} schedule) decoded, still-masked token cells greyed and hatched; last: the sample"
    )
    return [("h2", "Masked decoding: the token grid filling in step by step"), ("img", (path, caption))]


def build_blocks(out: Path, results: dict[str, Any]) -> list[Block]:
    """The whole report: title, the suite table, the budget sweep, the text-to-image blocks, stage times, machine,
    figures; a part without results says "not run yet"."""
    from semtok.pipelines.report_t2i import t2i_blocks

    machine = results["machine"]
    budget = results["budget"]
    rows = results.get("rows") or {}
    seeds = budget.get("train_seeds", [0])
    first = next(iter(rows.values()), {})
    blocks: list[Block] = [
        ("h1", f"semtok bench: the paper's comparison at small scale (suite '{results['suite']}')"),
        (
            "p",
            "Embedded default: MNIST-5k as RGB 32x32 (4500 train / 500 val), 64 tokens per image (8x8), about 1000 "
            "codes. Every tokenizer gets the same step budget, then both class-conditional proposal networks train "
            "on its tokens with the same size and step budget: the AR model (ar-mnist) and the masked "
            "MaskGIT-style model (nar-mnist, 12 parallel decoding steps). Each row is trained once per training "
            f"seed {list(seeds)} ({len(seeds)} training seeds: every training stage of the chain under that seed, "
            "its generation metrics under the same sampling seed). Budget: "
            f"{json.dumps(budget)}.",
        ),
    ]
    if not rows:
        blocks.append(("p", "Main and ablation rows: not run yet (semtok bench --parts main,ablation)."))
    else:
        not_run = [label for name, label in _labels().items() if name not in rows]
        blocks += [
            ("table", results_table(results)),
            (
                "p",
                f"Every metric: mean ± sample standard deviation over the {len(seeds)} training seeds (n: the "
                "chains with results; no ± with one). FID_AR / FID_NAR: gFID of the AR / masked model's samples; "
                "with precision, recall and class accuracy of each, one sample per val label. rFID / gFID "
                f"extractor: {first.get('fid_extractor')}; rFID reference: {first.get('fid_reference')}; gFID "
                f"reference: {first.get('gfid_reference')}. Precision/recall: k-NN manifolds (k = 3) in the same "
                "feature space. Class accuracy: the judge classifier (val top-1 "
                f"{fmt(results['judge'].get('val_top1'))}). Probe: linear classifier on mean-pooled frozen code "
                "vectors, val top-1. NAR val NLL: nats per masked token under random masks (not comparable to the "
                "AR's per-token NLL). Teacher ablation: the VQ-KD rows with EfficientNet-Lite2 and with a randomly "
                "initialised Lite0 (expected order of FID_AR: random-init Lite0 worse than Lite0, Lite0 worse than "
                "Lite2). Inception Score (IS_AR / IS_NAR): skipped (needs the full Inception weights, not "
                "available offline).",
            ),
        ]
        if not_run:
            blocks.append(("p", f"Not run yet: {', '.join(not_run)}."))
    blocks += sweep_blocks(out, results)
    blocks += t2i_blocks(out, results)
    blocks += [
        ("h2", "Seconds per stage (summed over each row's training seeds)"),
        ("table", stage_table(results)) if rows else ("p", "Not run yet."),
        (
            "p",
            f"Machine: {machine['cpu']} ({machine['cpu_count']} cores, {machine['torch_threads']} torch threads, "
            f"{machine['device']}); Python {machine['python']}, torch {machine['torch']}, numpy {machine['numpy']}, "
            f"semtok {machine['semtok']}. Wall time of this run: "
            f"{results.get('wall_seconds_this_run', 0) / 60:.1f} min (stages reused from earlier runs are not "
            "counted in it).",
        ),
    ]
    return blocks + (figures(out, results) if rows else [])


def _labels() -> dict[str, str]:
    from semtok.pipelines.suite import LABELS

    return LABELS


def render_markdown(blocks: list[Block], out: Path) -> str:
    lines: list[str] = []
    for kind, content in blocks:
        if kind == "h1":
            lines += [f"# {content}", ""]
        elif kind == "h2":
            lines += [f"## {content}", ""]
        elif kind == "p":
            lines += [content, ""]
        elif kind == "table":
            header, rows = content
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(r) + " |" for r in rows] + [""]
        elif kind == "img":
            path, caption = content
            lines += [f"**{caption}**", "", f"![{caption}]({Path(path).relative_to(out)})", ""]
    return "\n".join(lines)


def render_html(blocks: list[Block], out: Path) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>semtok bench</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}img{max-width:100%;image-rendering:pixelated}"
        "figure{margin:1em 0}</style></head><body>"
    ]
    for kind, content in blocks:
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{html.escape(content)}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{html.escape(content)}</p>")
        elif kind == "table":
            header, rows = content
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
            for row in rows:
                parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
            parts.append("</table>")
        elif kind == "img":
            path, caption = content
            src = html.escape(str(Path(path).relative_to(out)))
            parts.append(
                f"<figure><img src='{src}' alt='{html.escape(caption)}'><figcaption>{html.escape(caption)}"
            )
            parts.append("</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out: Path, results: dict[str, Any]) -> Path:
    """Write ``OUT/report.md`` and ``OUT/report.html`` (figures under ``OUT/figures``); returns report.md."""
    blocks = build_blocks(out, results)
    (out / "report.html").write_text(render_html(blocks, out))
    path = out / "report.md"
    path.write_text(render_markdown(blocks, out))
    return path
