"""The suite's report: one list of blocks (headings, text, tables, figures) rendered as report.md and report.html."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import torch
from PIL import Image

Block = tuple[str, Any]  # ("h2", text) | ("p", text) | ("table", (header, rows)) | ("img", (path, caption))


DECODING_LABELS = (0, 2, 4, 6, 8)  # the masked-decoding picture's classes (modulo the model's), seed 0
GENERATION_COLUMNS = (("gfid", 2), ("precision", 3), ("recall", 3), ("class_accuracy", 3))


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: floats to ``digits`` places, None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def mean_std(row: dict[str, Any], key: str, digits: int) -> str:
    """``row[key]`` ± ``row[key_std]`` (the mean and spread over seeds) as a table cell; a dash where absent."""
    mean, std = row.get(key), row.get(f"{key}_std")
    if mean is None:
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if std is not None else f"{mean:.{digits}f}"


def results_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The suite table in the paper's Table 1 order: tokenizer, codebook, reconstruction, probe, then per proposal
    network (AR, then masked: NAR) its val NLL and generation metrics (mean ± spread over the seeds)."""
    header = [
        "tokenizer",
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
                fmt(row.get("codebook_size")),
                fmt(row["usage"]),
                fmt(row["perplexity"], 1),
                fmt(row["rfid"], 2),
                fmt(row["psnr"], 2),
                fmt(row["ssim"]),
                fmt(row["probe_top1"]),
                fmt(row["ar_val_nll"]),
                *(mean_std(row, key, digits) for key, digits in GENERATION_COLUMNS),
                fmt(row.get("nar_val_masked_nll")),
                *(mean_std(row, f"nar_{key}", digits) for key, digits in GENERATION_COLUMNS),
                f"{sum(row['times'].values()) / 60:.1f}",
            ]
        )
    return header, rows


def stage_table(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    stages = sorted({name for row in results["rows"].values() for name in row["times"]})
    header = ["tokenizer", *stages]
    rows = [
        [row["label"], *(fmt(row["times"].get(s), 1) for s in stages)] for row in results["rows"].values()
    ]
    return header, rows


def stack_images(paths: list[Path], out: Path) -> Path:
    """Stack PNGs vertically (same width) into one image."""
    images = [Image.open(p).convert("RGB") for p in paths]
    width = max(i.width for i in images)
    canvas = Image.new("RGB", (width, sum(i.height for i in images)), "white")
    top = 0
    for image in images:
        canvas.paste(image, (0, top))
        top += image.height
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out


def figures(out: Path, results: dict[str, Any]) -> list[Block]:
    """Reconstruction grids, sample grids (a row of 8 per class), training curves, the codebook picture."""
    from semtok.data import build_dataset
    from semtok.tokenizers.base import Tokenizer
    from semtok.visual.codebook_picture import codebook_picture
    from semtok.visual.curves import plot_training_curves
    from semtok.visual.grids import reconstruction_grid, save_grid

    fig_dir = out / "figures"
    blocks: list[Block] = [("h2", "Reconstructions (rows: val originals, then their reconstructions)")]
    val = None
    for name, row in results["rows"].items():
        final = out / name / ("decoder_run" if (out / name / "decoder_run").exists() else "tokenizer_run")
        path = fig_dir / f"recon_{name}.png"
        if not path.exists():
            tokenizer = Tokenizer.from_pretrained(final / "tokenizer")
            val = val or build_dataset("mnist5k", "val", tokenizer.config.image_size)
            images = torch.stack([val[i][0] for i in range(0, len(val), len(val) // 8)][:8])
            save_grid(reconstruction_grid(tokenizer, images), path)
        blocks.append(("img", (path, row["label"])))
    blocks.append(
        (
            "h2",
            "Samples: one row of 8 per class (0-9), CFG 1.75, top-k 600, top-p 0.92; AR, then masked (NAR: 12 "
            "steps, cosine schedule)",
        )
    )
    for name, row in results["rows"].items():
        for prefix, family in (("", "AR"), ("nar_", "NAR")):
            grids = sorted(
                (out / name / f"{prefix}samples").glob("class_*.png"), key=lambda p: int(p.stem.split("_")[1])
            )
            if grids:
                path = stack_images(grids, fig_dir / f"{prefix}samples_{name}.png")
                blocks.append(("img", (path, f"{row['label']}, {family}")))
    blocks.append(("h2", "Training curves"))
    tokenizer_runs = {results["rows"][n]["label"]: out / n / "tokenizer_run" for n in results["rows"]}
    tokenizer_runs = {k: v for k, v in tokenizer_runs.items() if (v / "log.jsonl").exists()}
    ar_runs = {results["rows"][n]["label"]: out / n / "ar_run" for n in results["rows"]}
    if tokenizer_runs:
        path = plot_training_curves(
            tokenizer_runs, fig_dir / "curves_tokenizers.png", title="tokenizer training"
        )
        blocks.append(("img", (path, "tokenizer training (each kind logs its own losses)")))
    path = plot_training_curves(
        ar_runs, fig_dir / "curves_ar.png", keys=["loss/train_nll"], title="AR training"
    )
    blocks.append(("img", (path, "AR training NLL (nats per token) on each tokenizer's tokens")))
    nar_runs = {results["rows"][n]["label"]: out / n / "nar_run" for n in results["rows"]}
    nar_runs = {k: v for k, v in nar_runs.items() if (v / "log.jsonl").exists()}
    if nar_runs:
        path = plot_training_curves(
            nar_runs, fig_dir / "curves_nar.png", keys=["loss/train_masked_ce"], title="NAR training"
        )
        blocks.append(
            (
                "img",
                (
                    path,
                    "masked-model training loss (label-smoothed nats per masked token) on each row's tokens",
                ),
            )
        )
    blocks += masked_decoding_blocks(out, results)
    pair = {
        label: out / name / ("decoder_run" if name == "vqkd" else "tokenizer_run")
        for name, label in (("vqkd", "VQ-KD"), ("vqgan", "VQGAN"))
        if name in results["rows"]
    }
    if len(pair) == 2:
        blocks.append(("h2", "Codebook picture: image patches assigned to a few codes"))
        path = codebook_picture(pair, "mnist5k", fig_dir / "codebook.png")
        blocks.append(
            (
                "img",
                (path, "the most used codes of each tokenizer, 8 val patches each (red: the token's cell)"),
            )
        )
    return blocks


def masked_decoding_blocks(out: Path, results: dict[str, Any]) -> list[Block]:
    """The masked-decoding picture of the VQ-KD row's masked model (else the first row that has one), 5 samples."""
    from semtok.generators.sampler import Sampler
    from semtok.generators.sampling import SamplingConfig
    from semtok.visual.masked_decoding import masked_decoding_picture

    names = sorted(results["rows"], key=lambda n: n != "vqkd")  # vqkd first, the rest in table order
    name = next((n for n in names if (out / n / "nar_run" / "nar" / "model.safetensors").exists()), None)
    if name is None:
        return []
    sampling = SamplingConfig()
    path = out / "figures" / f"masked_decoding_{name}.png"
    if not path.exists():
        sampler = Sampler(out / name / "nar_run")
        labels = torch.tensor(DECODING_LABELS) % max(sampler.num_classes, 1)
        masked_decoding_picture(sampler, labels, path, sampling)
    caption = (
        f"{results['rows'][name]['label']}, NAR: per column the tokens known after each of the {sampling.steps} "
        f"steps ({sampling.schedule} schedule) decoded, still-masked token cells greyed and hatched; last: the sample"
    )
    return [("h2", "Masked decoding: the token grid filling in step by step"), ("img", (path, caption))]


def build_blocks(out: Path, results: dict[str, Any]) -> list[Block]:
    """The whole report: title, the suite table, the text-to-image blocks, stage times, machine, figures."""
    from semtok.pipelines.report_t2i import t2i_blocks

    machine = results["machine"]
    budget = results["budget"]
    first = next(iter(results["rows"].values()))
    blocks: list[Block] = [
        ("h1", f"semtok bench: the paper's comparison at small scale (suite '{results['suite']}')"),
        (
            "p",
            "Embedded default: MNIST-5k as RGB 32x32 (4500 train / 500 val), 64 tokens per image (8x8), about 1000 "
            "codes. Every tokenizer gets the same step budget and seed, then both class-conditional proposal "
            "networks train on its tokens with the same size and step budget: the AR model (ar-mnist) and the "
            "masked MaskGIT-style model (nar-mnist, 12 parallel decoding steps). Budget: "
            f"{json.dumps(budget)}.",
        ),
        ("table", results_table(results)),
        (
            "p",
            "FID_AR / FID_NAR: gFID of the AR / masked model's samples; with precision, recall and class "
            "accuracy of each: mean ± standard deviation over the sampling seeds "
            f"{first['seeds']} (ablation rows: one seed), one sample per val label. rFID / gFID extractor: "
            f"{first['fid_extractor']}; rFID reference: {first['fid_reference']}; gFID reference: "
            f"{first['gfid_reference']}. Precision/recall: k-NN manifolds (k = 3) in the same feature space. Class "
            f"accuracy: the judge classifier (val top-1 {fmt(results['judge'].get('val_top1'))}). Probe: linear "
            "classifier on mean-pooled frozen code vectors, val top-1. NAR val NLL: nats per masked token under "
            "random masks (not comparable to the AR's per-token NLL). Inception Score (IS_AR / IS_NAR): skipped "
            "(needs the full "
            "Inception weights, not available offline).",
        ),
        *t2i_blocks(out, results),
        ("h2", "Seconds per stage"),
        ("table", stage_table(results)),
        (
            "p",
            f"Machine: {machine['cpu']} ({machine['cpu_count']} cores, {machine['torch_threads']} torch threads, "
            f"{machine['device']}); Python {machine['python']}, torch {machine['torch']}, numpy {machine['numpy']}, "
            f"semtok {machine['semtok']}. Training seed 0 everywhere. Wall time of this run: "
            f"{results.get('wall_seconds_this_run', 0) / 60:.1f} min (stages reused from earlier runs are not "
            "counted in it).",
        ),
    ]
    return blocks + figures(out, results)


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
