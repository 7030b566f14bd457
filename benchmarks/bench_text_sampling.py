"""Text-conditioned sampling speed beside class-conditioned sampling at the same model size, both families.

    python benchmarks/bench_text_sampling.py [--out benchmarks/results_text_sampling.json] [--repeats 3] [--quick]

Workloads (random weights, seeded, fp32, CPU, through ``pack_for_cpu`` as the ``Sampler`` runs them; the default
``SamplingConfig``: CFG 1.75, so every forward runs 2B rows; masked: 12 steps):
- ``mnist``: the embedded defaults' shape: ``tiny`` (4 x 128 x 4), 8 x 8 = 64 tokens, 1024 codes; class model with
  10 classes (1 prefix position) vs text model with a 16-position prefix of all-MiniLM-L6-v2 states (384-d, the real
  encoder from its wheel). Batch 64 (the evaluation batch). The text figure is given without and with encoding the
  prompts (the encoder runs once per batch, outside the generator).
- ``in1k``: ``small`` (8 x 384 x 6), 16 x 16 = 256 tokens, 8192 codes; 1000 classes vs a 120-position prefix of
  2048-d states (FLAN-T5-XL's width, LlamaGen's prefix); the states are random (no T5 weights offline), so encoding
  is not timed. Batch 16.
Each configuration: one warm-up, then ``--repeats`` timed runs; seconds is their median. The ratio text / class is
the cost of the text prefix (AR: a longer prefill and attention over P + N positions; masked: P extra positions in
every step). ``--quick``: one repeat, mnist shape only (a smoke test).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from bench_sampling import timed  # median of the timed runs after one warm-up (the AR benchmark's timer)
from semtok.generators import ARConfig, ARTransformer, SamplingConfig, generate
from semtok.generators.cpu_inference import pack_for_cpu
from semtok.generators.masked import MaskedConfig, MaskedTransformer
from semtok.generators.masked_sampling import generate_masked
from semtok.pipelines.machine import machine_info

SHAPES = {
    "mnist": {
        "size": "tiny",
        "grid": (8, 8),
        "vocab": 1024,
        "classes": 10,
        "text_len": 16,
        "dim": 384,
        "batch": 64,
    },
    "in1k": {
        "size": "small",
        "grid": (16, 16),
        "vocab": 8192,
        "classes": 1000,
        "text_len": 120,
        "dim": 2048,
        "batch": 16,
    },
}
PROMPTS = ["a small red 7", "the digit three in blue, large", "a green number 5, small", "large cyan one"]


def build(family: str, shape: dict, text: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    config_class, model_class = (
        (ARConfig, ARTransformer) if family == "ar" else (MaskedConfig, MaskedTransformer)
    )
    h, w = shape["grid"]
    extra = {"text_dim": shape["dim"], "text_len": shape["text_len"]} if text else {}
    config = config_class(
        size=shape["size"],
        vocab_size=shape["vocab"],
        seq_len=h * w,
        grid=(h, w),
        num_classes=shape["classes"],
        **extra,
    )
    model = model_class(config).eval()
    torch.nn.init.normal_(model.head.weight, std=0.02)  # not the zero init: real logits to sample from
    return pack_for_cpu(model)


@torch.inference_mode()
def measure(name: str, shape: dict, repeats: int) -> dict:
    batch = shape["batch"]
    sampling = SamplingConfig()
    labels = torch.arange(batch) % shape["classes"]
    encoder = None
    if name == "mnist":
        from semtok.text.registry import build_text_encoder

        encoder = build_text_encoder("minilm-l6", max_length=shape["text_len"])
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(batch)]
        embeddings, mask = encoder(prompts)
    else:
        generator = torch.Generator().manual_seed(0)
        embeddings = torch.randn(batch, shape["text_len"], shape["dim"], generator=generator)
        mask = torch.ones(batch, shape["text_len"], dtype=torch.bool)
    result: dict = {"shape": shape}
    for family in ("ar", "masked"):
        sample = generate if family == "ar" else generate_masked
        class_model, text_model = build(family, shape, False), build(family, shape, True)
        class_s = timed(lambda m=class_model, f=sample: f(m, labels, sampling, seed=0), repeats)
        text_s = timed(
            lambda m=text_model, f=sample: f(m, None, sampling, seed=0, text=(embeddings, mask)), repeats
        )
        entry = {
            "class_seconds": round(class_s, 3),
            "text_seconds": round(text_s, 3),
            "text_over_class": round(text_s / class_s, 3),
            "class_images_per_s": round(batch / class_s, 2),
            "text_images_per_s": round(batch / text_s, 2),
        }
        if encoder is not None:
            encode_s = timed(lambda: encoder(prompts), repeats)
            entry["encode_seconds"] = round(encode_s, 4)
            entry["text_with_encoding_over_class"] = round((text_s + encode_s) / class_s, 3)
        result[family] = entry
        print(name, family, entry, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results_text_sampling.json")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    names = ["mnist"] if args.quick else list(SHAPES)
    repeats = 1 if args.quick else args.repeats
    results = {
        "machine": machine_info(),
        "repeats": repeats,
        **{name: measure(name, SHAPES[name], repeats) for name in names},
    }
    if not args.quick:
        Path(args.out).write_text(json.dumps(results, indent=2))
        print(f"results: {args.out}")


if __name__ == "__main__":
    main()
