"""Evaluate a trained tokenizer on a data split: codebook usage, perplexity, teacher-feature similarity."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from semtok.data import build_dataset
from semtok.errors import SemtokError
from semtok.metrics.codebook import code_histogram, codebook_stats
from semtok.tokenizers.base import Tokenizer


def resolve_tokenizer_dir(path: str | Path) -> Path:
    """A run folder (holding ``tokenizer/``) or a tokenizer folder itself -> the tokenizer folder."""
    path = Path(path)
    if (path / "tokenizer" / "config.json").exists():
        return path / "tokenizer"
    if not path.exists():
        raise SemtokError(f"'{path}' does not exist: expected a run folder or a tokenizer folder")
    if not (path / "config.json").exists():
        raise SemtokError(f"'{path}' holds no tokenizer (no config.json, no tokenizer/config.json)")
    return path


def iterate_batches(dataset: Any, batch_size: int, show: bool, desc: str):
    """(images [B,3,H,W], labels [B]) batches of a dataset in index order."""
    for start in tqdm(range(0, len(dataset), batch_size), desc=desc, disable=not show, leave=False):
        items = [dataset[i] for i in range(start, min(len(dataset), start + batch_size))]
        yield torch.stack([image for image, _ in items]), torch.tensor([label for _, label in items])


@torch.no_grad()
def evaluate_tokenizer(
    path: str | Path,
    data: str = "mnist5k",
    split: str = "val",
    batch_size: int = 128,
    teacher_weights: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Metrics of the tokenizer at ``path`` on ``data``/``split``; written to ``path``'s eval.json by the CLI."""
    tokenizer_dir = resolve_tokenizer_dir(path)
    tokenizer = Tokenizer.from_pretrained(tokenizer_dir)
    image_size = tokenizer.config.image_size
    dataset = build_dataset(data, split, image_size, augment="none")
    counts = torch.zeros(tokenizer.num_codes, dtype=torch.long)
    results: dict[str, Any] = {
        "tokenizer": str(tokenizer_dir),
        "kind": tokenizer.kind,
        "data": data,
        "split": split,
        "images": len(dataset),
        "num_codes": tokenizer.num_codes,
        "grid": list(tokenizer.grid_size),
    }
    teacher = None
    if tokenizer.kind == "vqkd":
        from semtok.training.vqkd import build_run_teacher, teacher_targets

        config = tokenizer.config
        if teacher_weights is not None:
            config.teacher_weights = teacher_weights
        teacher = build_run_teacher(config)
        results["teacher"] = config.teacher
    cosine_sum, tokens = 0.0, 0
    for images, _ in iterate_batches(dataset, batch_size, progress, f"evaluate {split}"):
        ids = tokenizer.encode(images)
        counts += code_histogram(ids, tokenizer.num_codes)
        if teacher is not None:
            decoded = tokenizer.decode_features(ids)
            targets = teacher_targets(teacher, images, tokenizer.grid_size)
            cosine = F.cosine_similarity(decoded.float(), targets, dim=1)
            cosine_sum += float(cosine.sum())
            tokens += cosine.numel()
    results.update(codebook_stats(counts))
    if teacher is not None:
        results["teacher_cosine"] = cosine_sum / max(tokens, 1)
    return results


def format_table(results: dict[str, Any]) -> str:
    """A two-column markdown table of the scalar results."""
    rows = ["| metric | value |", "|---|---|"]
    for key, value in results.items():
        if isinstance(value, float):
            value = f"{value:.4f}"
        rows.append(f"| {key} | {value} |")
    return "\n".join(rows)


def write_json(results: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(results, indent=2))
    return path
