"""Shared fixtures: a tiny labelled image folder and a tiny VQ-KD config (seconds on 2 cores)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(2)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_VQKD = [
    "model.image_size=32",
    "model.patch_size=8",
    "model.encoder=tiny",
    "model.encoder_depth=1",
    "model.quantizer.code_dim=8",
    "model.quantizer.num_codes=32",
    "model.quantizer.dead_code_steps=3",
    "model.decoder_width=32",
    "model.decoder_heads=2",
    "model.teacher.name=effnet-lite0",
    "model.teacher.input_size=64",
    "model.teacher.stride=16",
    "train.steps=10",
    "train.batch_size=8",
    "train.warmup_steps=2",
    "train.checkpoint_every=5",
    "train.log_every=1",
]


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """train/ and val/ splits, 2 classes, 20 + 6 images of 32x32 coloured shapes."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for split, count in (("train", 10), ("val", 3)):
        for label, name in enumerate(("circles", "squares")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = np.full((32, 32, 3), 255, np.uint8)
                colour = rng.integers(0, 200, 3)
                c, r = rng.integers(10, 22, 2), rng.integers(4, 9)
                yy, xx = np.mgrid[:32, :32]
                mask = (
                    (yy - c[0]) ** 2 + (xx - c[1]) ** 2 < r**2
                    if label == 0
                    else (abs(yy - c[0]) < r) & (abs(xx - c[1]) < r)
                )
                pixels[mask] = colour
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


@pytest.fixture
def tiny_vqkd_overrides(image_folder: Path) -> list[str]:
    return [*TINY_VQKD, f"data.dataset={image_folder}"]


def pattern_tokens(path: Path, rows: int = 64) -> tuple[Path, torch.Tensor]:
    """A token file of two classes, each always the same 8-token grid (2 x 4, 16 codes): a proposal network that
    learned them regenerates them. Returns (manifest, the two sequences [2, 8])."""
    from semtok.data.token_file import write_token_file

    sequences = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8], [8, 7, 6, 5, 4, 3, 2, 1]])
    labels = torch.arange(rows) % 2
    meta = {
        "tokenizer": {"path": "", "kind": "none", "config": {}},
        "num_classes": 2,
        "class_names": ["a", "b"],
    }
    return write_token_file(path, sequences[labels].view(rows, 2, 4), labels, 16, meta), sequences
