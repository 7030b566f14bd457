"""The sampling interface of both families: a proposal network (AR or masked) and the tokenizer that decodes its
tokens -> images.

``Sampler(path).sample(labels, settings, seed)`` gives images and ids, whichever family the run or model folder
holds (``sampler.family``: ``"ar"`` or ``"masked"``); a text model (``sampler.is_text``) takes
``sample(prompts=[...])`` instead of labels and encodes them with the text encoder its config records.
``provenance`` is what every sample file records (:mod:`semtok.visual.provenance` writes them).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from semtok.data.processes import Processes, in_batch_order
from semtok.errors import SemtokError
from semtok.generators.ar import ARTransformer
from semtok.generators.cpu_inference import pack_for_cpu
from semtok.generators.masked import MaskedTransformer
from semtok.generators.masked_sampling import generate_masked
from semtok.generators.sampling import SamplingConfig, generate
from semtok.hub.files import CONFIG_FILE, WEIGHTS_FILE
from semtok.hub.pretrained import read_model_config, resolve_model_dir
from semtok.text.base import TextEncoder
from semtok.text.registry import build_text_encoder
from semtok.tokenizers.base import Tokenizer, has_pixel_decoder

# model kind (config.json) -> (class, family name); a run folder holds the model in the class's run_folder.
GENERATOR_KINDS: dict[str, tuple[type, str]] = {
    "ar": (ARTransformer, "ar"),
    "nar": (MaskedTransformer, "masked"),
}


def resolve_generator_dir(path: str | Path) -> Path:
    """The model folder of a proposal network: a run folder holding ``ar/`` or ``nar/``, a model folder of kind
    ``ar`` or ``nar``, or a hub repo id."""
    for model_class, _ in GENERATOR_KINDS.values():
        if (Path(path) / model_class.run_folder / CONFIG_FILE).is_file():
            return Path(path) / model_class.run_folder
    folder = resolve_model_dir(path, "ar")
    kind = read_model_config(folder)["kind"]
    if kind not in GENERATOR_KINDS:
        raise SemtokError(
            f"'{folder}' holds a {kind!r} model, not a proposal network ({' or '.join(GENERATOR_KINDS)})"
        )
    return folder


class Sampler:
    """A proposal network (AR or masked) and the tokenizer that decodes its tokens, loaded from a run or model
    folder of either (or a repo id).

    ``tokenizer``: another tokenizer folder to decode with (default: the one recorded at training time, the
    model's ``info["tokenizer"]``); it must have the same codebook size and grid.
    """

    def __init__(self, path: str | Path, tokenizer: str | Path | None = None) -> None:
        self.model_dir = resolve_generator_dir(path)
        self.kind = read_model_config(self.model_dir)["kind"]
        model_class, self.family = GENERATOR_KINDS[self.kind]
        self.model = model_class.from_pretrained(self.model_dir)
        recorded = self.info.get("tokenizer")
        if tokenizer is None and not recorded:
            raise SemtokError(
                f"'{self.model_dir}' does not record its tokenizer: give a tokenizer folder (parameter 'tokenizer')"
            )
        self.tokenizer_dir = resolve_model_dir(tokenizer or recorded, "tokenizer")
        self.tokenizer = Tokenizer.from_pretrained(self.tokenizer_dir)
        config = self.model.config
        noun = "masked" if self.family == "masked" else "AR"
        if self.tokenizer.num_codes != config.vocab_size or tuple(self.tokenizer.grid_size) != tuple(
            config.grid
        ):
            raise SemtokError(
                f"tokenizer '{self.tokenizer_dir}' ({self.tokenizer.num_codes} codes, grid "
                f"{list(self.tokenizer.grid_size)}) does not match the {noun} model ({config.vocab_size} codes, grid "
                f"{list(config.grid)})"
            )
        if not has_pixel_decoder(self.tokenizer):
            raise SemtokError(
                f"tokenizer '{self.tokenizer_dir}' has no pixel decoder: train one with `semtok train decoder`"
            )
        self._text_encoder: TextEncoder | None = None
        self.fast_model = pack_for_cpu(self.model)  # same fp32 maths, oneDNN GEMMs on the CPU
        digest = hashlib.sha256((self.model_dir / WEIGHTS_FILE).read_bytes()).hexdigest()
        self.weights_sha256 = digest[:16]

    @property
    def info(self) -> dict[str, Any]:
        """The model's provenance (``tokenizer``, ``tokens``, ``data``, ``class_names``)."""
        return self.model.info

    @property
    def num_classes(self) -> int:
        return self.model.config.num_classes

    @property
    def class_names(self) -> list[str]:
        return list(self.info.get("class_names") or [])

    @property
    def is_text(self) -> bool:
        """Whether the model is text-conditional (sampled from prompts, not class labels)."""
        return bool(self.model.config.text_dim)

    @property
    def text_encoder(self) -> TextEncoder:
        """The frozen text encoder the model was trained with (built on first use)."""
        config = self.model.config
        if not self.is_text:
            raise SemtokError(f"'{self.model_dir}' is class-conditional: it has no text encoder")
        if not config.text_encoder:
            raise SemtokError(f"'{self.model_dir}' does not record its text encoder (config 'text_encoder')")
        if self._text_encoder is None:
            weights = config.text_encoder_weights or None
            self._text_encoder = build_text_encoder(config.text_encoder, weights, max_length=config.text_len)
            if self._text_encoder.dim != config.text_dim:
                raise SemtokError(
                    f"text encoder {config.text_encoder} gives {self._text_encoder.dim}-d states, the model "
                    f"'{self.model_dir}' expects {config.text_dim}"
                )
        return self._text_encoder

    def encode_prompts(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The text condition of ``prompts``: (embeddings [B, L, text_dim] float32, mask [B, L] bool); an empty or
        blank prompt gets an all-False mask, i.e. the model's null prefix (unconditional)."""
        embeddings, mask = self.text_encoder([prompt or " " for prompt in prompts])
        empty = torch.tensor([not prompt.strip() for prompt in prompts])
        return embeddings, mask & ~empty[:, None]

    def check_class(self, label: int) -> None:
        if not 0 <= label < max(self.num_classes, 1) and not (self.num_classes == 0 and label == 0):
            raise SemtokError(f"class label {label}: this model has classes 0..{self.num_classes - 1}")

    def sample(
        self,
        labels_B: torch.Tensor | None = None,
        sampling: SamplingConfig | None = None,
        seed: int = 0,
        batch_size: int = 64,
        progress: bool = False,
        record: list[torch.Tensor] | None = None,
        prompts: list[str] | None = None,
        processes: Processes | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(images [B, 3, H, W] in [-1, 1], token ids [B, h, w]) for class labels ``labels_B`` (int64 [B]) or, for a
        text model, ``prompts`` (B strings; an empty or blank prompt samples unconditionally, from the null prefix
        that caption dropout trained).

        Batch ``j`` (of ``batch_size`` labels) is drawn with seed ``seed * 1000003 + j``, so a run is reproducible for the
        same labels, seed, batch size and settings, in one process or split over many (:meth:`sample_batches`). An
        unconditional model (0 classes) ignores the labels. ``record`` (masked models): receives each batch's grid
        after every decoding step, ``[b, h, w]`` int64 with ``-1`` where still masked
        (:func:`semtok.generators.masked_sampling.generate_masked`). ``processes``: each process samples its own
        batches and every process gets all of them back, in order.
        """
        mine = self.sample_batches(labels_B, sampling, seed, batch_size, progress, record, prompts, processes)
        parts = [(index, (images, ids)) for index, images, ids in mine]
        batches = in_batch_order((processes or Processes()).gather(parts))
        return torch.cat([images for images, _ in batches]), torch.cat([ids for _, ids in batches])

    @torch.inference_mode()
    def sample_batches(
        self,
        labels_B: torch.Tensor | None = None,
        sampling: SamplingConfig | None = None,
        seed: int = 0,
        batch_size: int = 64,
        progress: bool = False,
        record: list[torch.Tensor] | None = None,
        prompts: list[str] | None = None,
        processes: Processes | None = None,
    ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
        """``(j, images [b, 3, H, W] in [-1, 1], ids [b, h, w])`` for each global batch ``j`` of this process
        (``processes``: every ``world_size``-th batch from ``rank`` on, :class:`semtok.data.processes.Processes`;
        default: every batch). Batch ``j`` holds items ``[j * batch_size, (j + 1) * batch_size)`` and is seeded by
        ``seed * 1000003 + j`` alone, so the images are the same whatever the number of processes."""
        sampling = sampling or SamplingConfig()
        if self.is_text:
            if prompts is None or labels_B is not None:
                raise SemtokError(f"'{self.model_dir}' is a text model: give prompts, not class labels")
            count = len(prompts)
        else:
            if prompts is not None:
                raise SemtokError(f"'{self.model_dir}' is class-conditional: give class labels, not prompts")
            labels_B = torch.as_tensor(labels_B, dtype=torch.long)
            if self.num_classes == 0:
                labels_B = torch.zeros_like(labels_B)
            count = labels_B.shape[0]
        grid = tuple(self.model.config.grid)
        for index, start, stop in (processes or Processes()).batches(count, batch_size):
            chunk, text = None, None
            if self.is_text:
                text = self.encode_prompts(prompts[start:stop])
            else:
                chunk = labels_B[start:stop]
            chunk_seed = seed * 1_000_003 + index
            if self.family == "masked":
                steps: list[torch.Tensor] | None = [] if record is not None else None
                tokens = generate_masked(self.fast_model, chunk, sampling, chunk_seed, progress, steps, text)
                if record is not None:
                    record.extend(step.view(-1, *grid) for step in steps)
            else:
                tokens = generate(
                    self.fast_model, chunk, sampling, seed=chunk_seed, progress=progress, text=text
                )
            tokens = tokens.view(-1, *grid)
            yield index, self.tokenizer.decode(tokens).clamp(-1, 1), tokens

    def provenance(
        self, sampling: SamplingConfig, seed: int, batch_size: int, **fields: Any
    ) -> dict[str, Any]:
        """What a sample file records: tokenizer, model, seed, sampling settings (+ ``fields``: classes...).

        The same record for both families; ``sampling`` holds every setting, and ``decoding`` says which apply:
        ``"autoregressive"`` (temperature, top_k, top_p, cfg_scale) or ``"masked"`` (those, plus steps, schedule,
        choice_temperature, cfg_ramp)."""
        return {
            "condition": "text" if self.is_text else "class",
            "tokenizer": str(self.tokenizer_dir.resolve()),
            "tokenizer_kind": self.tokenizer.kind,
            "generator_kind": self.kind,
            "decoding": "masked" if self.family == "masked" else "autoregressive",
            "model": str(self.model_dir.resolve()),
            "weights_sha256": self.weights_sha256,
            "tokens": self.info.get("tokens"),
            "seed": seed,
            "seed_rule": "batch j of batch_size labels is drawn with generator seed seed * 1000003 + j",
            "batch_size": batch_size,
            "sampling": dataclasses.asdict(sampling),
            **self.text_provenance(),
            **fields,
        }

    def text_provenance(self) -> dict[str, Any]:
        """The text encoder of a text model as sample files record it (empty for a class model)."""
        if not self.is_text:
            return {}
        config = self.model.config
        weights = config.text_encoder_weights or "(registry default)"
        return {
            "text_encoder": {"name": config.text_encoder, "weights": weights, "text_len": config.text_len}
        }
