"""The sampling interface: a proposal network and the tokenizer that decodes its tokens -> images.

``Sampler(path).sample(labels, settings, seed)`` gives images and ids; ``provenance`` is what every sample file
records (:mod:`semtok.visual.provenance` writes them).
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import torch

from semtok.errors import SemtokError
from semtok.generators.ar import ARTransformer
from semtok.generators.cpu_inference import pack_for_cpu
from semtok.generators.sampling import SamplingConfig, generate
from semtok.hub.files import WEIGHTS_FILE
from semtok.hub.pretrained import resolve_model_dir
from semtok.tokenizers.base import Tokenizer, has_pixel_decoder


class Sampler:
    """An AR model and the tokenizer that decodes its tokens, loaded from an AR run or model folder (or repo id).

    ``tokenizer``: another tokenizer folder to decode with (default: the one recorded at training time, the AR
    model's ``info["tokenizer"]``); it must have the same codebook size and grid.
    """

    def __init__(self, path: str | Path, tokenizer: str | Path | None = None) -> None:
        self.ar_dir = resolve_model_dir(path, "ar")
        self.model = ARTransformer.from_pretrained(self.ar_dir)
        recorded = self.info.get("tokenizer")
        if tokenizer is None and not recorded:
            raise SemtokError(
                f"'{self.ar_dir}' does not record its tokenizer: give a tokenizer folder (parameter 'tokenizer')"
            )
        self.tokenizer_dir = resolve_model_dir(tokenizer or recorded, "tokenizer")
        self.tokenizer = Tokenizer.from_pretrained(self.tokenizer_dir)
        config = self.model.config
        if self.tokenizer.num_codes != config.vocab_size or tuple(self.tokenizer.grid_size) != tuple(
            config.grid
        ):
            raise SemtokError(
                f"tokenizer '{self.tokenizer_dir}' ({self.tokenizer.num_codes} codes, grid "
                f"{list(self.tokenizer.grid_size)}) does not match the AR model ({config.vocab_size} codes, grid "
                f"{list(config.grid)})"
            )
        if not has_pixel_decoder(self.tokenizer):
            raise SemtokError(
                f"tokenizer '{self.tokenizer_dir}' has no pixel decoder: train one with `semtok train decoder`"
            )
        self.fast_model = pack_for_cpu(self.model)  # same fp32 maths, oneDNN GEMMs on the CPU
        digest = hashlib.sha256((self.ar_dir / WEIGHTS_FILE).read_bytes()).hexdigest()
        self.weights_sha256 = digest[:16]

    @property
    def info(self) -> dict[str, Any]:
        """The AR model's provenance (``tokenizer``, ``tokens``, ``data``, ``class_names``)."""
        return self.model.info

    @property
    def num_classes(self) -> int:
        return self.model.config.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.info.get("class_names") or [])

    def check_class(self, label: int) -> None:
        if not 0 <= label < max(self.num_classes, 1) and not (self.num_classes == 0 and label == 0):
            raise SemtokError(f"class label {label}: this model has classes 0..{self.num_classes - 1}")

    @torch.inference_mode()
    def sample(
        self,
        labels_B: torch.Tensor,
        sampling: SamplingConfig,
        seed: int = 0,
        batch_size: int = 64,
        progress: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(images [B, 3, H, W] in [-1, 1], token ids [B, h, w]) for class labels ``labels_B``.

        Batch ``j`` (of ``batch_size`` labels) is drawn with seed ``seed * 1000003 + j``, so a run is reproducible for the
        same labels, seed, batch size and settings. An unconditional model (0 classes) ignores the labels.
        """
        labels_B = torch.as_tensor(labels_B, dtype=torch.long)
        if self.num_classes == 0:
            labels_B = torch.zeros_like(labels_B)
        grid = tuple(self.model.config.grid)
        images, ids = [], []
        for index, start in enumerate(range(0, labels_B.shape[0], batch_size)):
            chunk = labels_B[start : start + batch_size]
            tokens = generate(
                self.fast_model, chunk, sampling, seed=seed * 1_000_003 + index, progress=progress
            )
            tokens = tokens.view(-1, *grid)
            ids.append(tokens)
            images.append(self.tokenizer.decode(tokens).clamp(-1, 1))
        return torch.cat(images), torch.cat(ids)

    def provenance(
        self, sampling: SamplingConfig, seed: int, batch_size: int, **fields: Any
    ) -> dict[str, Any]:
        """What a sample file records: tokenizer, AR model, seed, sampling settings (+ ``fields``: classes...)."""
        return {
            "tokenizer": str(self.tokenizer_dir.resolve()),
            "tokenizer_kind": self.tokenizer.kind,
            "ar_model": str(self.ar_dir.resolve()),
            "ar_weights_sha256": self.weights_sha256,
            "ar_tokens": self.info.get("tokens"),
            "seed": seed,
            "seed_rule": "batch j of batch_size labels is drawn with generator seed seed * 1000003 + j",
            "batch_size": batch_size,
            "sampling": dataclasses.asdict(sampling),
            **fields,
        }
