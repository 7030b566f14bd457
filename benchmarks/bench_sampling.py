"""Sampling speed of the AR proposal network: with and without KV cache, beside Hugging Face GPT-2 ``generate``.

    python benchmarks/bench_sampling.py [--out benchmarks/results_sampling.json] [--skip-nocache-base]

Workloads (random weights, fp32, CPU, 2 threads, batch 16, top-k 600, top-p 0.92, temperature 1):
- ``ar-mnist``: our tiny model (4 layers x 128 x 4 heads), 1024 codes, 64 tokens per image, 10 classes;
- ``base``: 12 layers x 768 x 12 heads, 8192 codes, 256 tokens per image, 1000 classes.
For each: ours (LLaMA style and GPT-2 style) with the KV cache, ours without it (the whole prefix recomputed every
step), ours with classifier-free guidance 1.75 (2x the rows), ours with plain ``torch.nn.functional.linear`` instead of
the default oneDNN-prepacked fp32 linear layers (``semtok.generators.cpu_inference``), and ``transformers`` ``GPT2LMHeadModel.generate``
(``use_cache=True``, ``do_sample``, same top-k / top-p) at the same depth, width, heads and vocabulary, started from
one token (our class token) and forced to produce exactly the same number of tokens. Guidance is off in the
comparison rows (HF has no class guidance). Times are the median of ``--repeats`` runs after a warm-up run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from semtok.generators import ARConfig, ARTransformer, SamplingConfig, generate
from semtok.generators.cpu_inference import pack_for_cpu

BATCH, TOP_K, TOP_P = 16, 600, 0.92
WORKLOADS = {
    "ar-mnist": {"depth": 4, "width": 128, "heads": 4, "vocab_size": 1024, "seq_len": 64, "num_classes": 10},
    "base": {"depth": 12, "width": 768, "heads": 12, "vocab_size": 8192, "seq_len": 256, "num_classes": 1000},
}


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ours(shape: dict, style: str) -> ARTransformer:
    torch.manual_seed(0)
    model = ARTransformer(ARConfig(style=style, **shape)).eval()
    torch.nn.init.normal_(model.head.weight, std=0.02)  # not the zero init: sampling from a non-uniform model
    return model


def hf_gpt2(shape: dict):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=shape["vocab_size"],
        n_positions=shape["seq_len"] + 1,
        n_embd=shape["width"],
        n_layer=shape["depth"],
        n_head=shape["heads"],
    )
    model = GPT2LMHeadModel(config).eval()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


def row(name: str, seconds: float, seq_len: int, rows: int = BATCH) -> dict:
    return {
        "path": name,
        "seconds": round(seconds, 3),
        "images_per_s": round(rows / seconds, 3),
        "tokens_per_s": round(rows * seq_len / seconds, 1),
    }


def bench_workload(name: str, shape: dict, repeats: int, nocache: bool) -> list[dict]:
    seq_len = shape["seq_len"]
    labels = torch.arange(BATCH) % shape["num_classes"]
    rows = []
    plain = SamplingConfig(top_k=TOP_K, top_p=TOP_P, cfg_scale=1.0)
    for style in ("llama", "gpt2"):
        model = ours(shape, style)
        packed = pack_for_cpu(model, BATCH)
        seconds = timed(lambda m=packed: generate(m, labels, plain, seed=0), repeats)
        rows.append(row(f"semtok {style}, KV cache", seconds, seq_len))
        print(rows[-1], flush=True)
        seconds = timed(lambda m=model: generate(m, labels, plain, seed=0), repeats)
        rows.append(
            row(f"semtok {style}, KV cache, plain torch linear (no oneDNN packing)", seconds, seq_len)
        )
        print(rows[-1], flush=True)
    model = pack_for_cpu(ours(shape, "llama"), 2 * BATCH)
    guided = SamplingConfig(top_k=TOP_K, top_p=TOP_P, cfg_scale=1.75)
    seconds = timed(lambda: generate(model, labels, guided, seed=0), repeats)
    rows.append(row("semtok llama, KV cache, CFG 1.75 (32 rows per step)", seconds, seq_len))
    print(rows[-1], flush=True)
    if nocache:
        no_cache = SamplingConfig(top_k=TOP_K, top_p=TOP_P, cfg_scale=1.0, use_cache=False)
        start = time.perf_counter()
        generate(model, labels, no_cache, seed=0)  # one run: it is the slow reference
        rows.append(row("semtok llama, no cache (prefix recomputed)", time.perf_counter() - start, seq_len))
        print(rows[-1], flush=True)
    hf = hf_gpt2(shape)
    start_ids = torch.zeros(BATCH, 1, dtype=torch.long)

    def run_hf() -> None:
        with torch.inference_mode():
            out = hf.generate(
                start_ids,
                attention_mask=torch.ones_like(start_ids),
                max_new_tokens=seq_len,
                min_new_tokens=seq_len,
                do_sample=True,
                top_k=TOP_K,
                top_p=TOP_P,
                use_cache=True,
            )
        assert out.shape == (BATCH, seq_len + 1)

    rows.append(row("transformers GPT2LMHeadModel.generate, KV cache", timed(run_hf, repeats), seq_len))
    print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results_sampling.json")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--skip-nocache-base", action="store_true", help="skip the slow no-cache run at 12 x 768"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    import transformers

    results = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "batch": BATCH,
        "top_k": TOP_K,
        "top_p": TOP_P,
        "workloads": {},
    }
    for name, shape in WORKLOADS.items():
        nocache = not (name == "base" and args.skip_nocache_base)
        rows = bench_workload(name, shape, args.repeats, nocache)
        by_path = {r["path"]: r["seconds"] for r in rows}
        cached = by_path["semtok llama, KV cache"]
        hf_seconds = by_path["transformers GPT2LMHeadModel.generate, KV cache"]
        plain_key = "semtok llama, KV cache, plain torch linear (no oneDNN packing)"
        summary = {
            "speedup_plain_linear_vs_hf_generate": round(hf_seconds / by_path[plain_key], 2),
            "speedup_vs_hf_generate": round(
                by_path["transformers GPT2LMHeadModel.generate, KV cache"] / cached, 2
            ),
            "speedup_gpt2_style_vs_hf_generate": round(
                by_path["transformers GPT2LMHeadModel.generate, KV cache"] / by_path["semtok gpt2, KV cache"],
                2,
            ),
        }
        if nocache:
            summary["speedup_vs_no_cache"] = round(
                by_path["semtok llama, no cache (prefix recomputed)"] / cached, 2
            )
        results["workloads"][name] = {"shape": shape, "rows": rows, **summary}
        print(name, summary, flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"results: {args.out}")


if __name__ == "__main__":
    main()
