"""The bench suite's numbers from its stage outputs: a chain's metrics and a row's mean ± sd over its chains
(:mod:`semtok.pipelines.suite`)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from semtok.pipelines.suite_rows import CHAIN_KEYS, GENERATION_KEYS, LABELS, ROWS


def generation_stats(
    row_dir: Path,
    seeds: tuple[int, ...],
    prefix: str,
    keys: tuple[str, ...] = GENERATION_KEYS,
    key_prefix: str | None = None,
) -> dict[str, Any]:
    """``{key_prefix}gfid`` etc. (``key_prefix`` defaults to ``prefix``): mean, spread and per-seed values over the
    seeds' files ``row_dir/{prefix}generation_seed{S}.json`` (None where absent)."""
    key_prefix = prefix if key_prefix is None else key_prefix
    paths = [row_dir / f"{prefix}generation_seed{s}.json" for s in seeds]
    generations = [json.loads(p.read_text()) for p in paths if p.exists()]
    result: dict[str, Any] = {}
    for key in keys:
        result.update(stats([g.get(key) for g in generations], f"{key_prefix}{key}"))
    result[f"{key_prefix}gfid_reference"] = generations[0].get("fid_reference") if generations else None
    return result


def stats(values: list[Any], key: str) -> dict[str, Any]:
    """``key``: the mean of ``values`` (None ones left out: not measured), ``key_std``: their sample sd (None with
    fewer than two), ``key_per_seed``: the values kept."""
    kept = [v for v in values if v is not None]
    return {
        key: statistics.fmean(kept) if kept else None,
        f"{key}_std": statistics.stdev(kept) if len(kept) > 1 else None,
        f"{key}_per_seed": kept,
    }


def _summary(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def collect_chain(chain: Path, seed: int) -> dict[str, Any]:
    """One chain's numbers from its metric JSONs (None where a file is absent; ``{}`` when the chain has no
    ``eval_val.json``): reconstruction, probe, val NLLs, AR (plain keys), masked (``nar_``) and text-to-image
    (``t2i_``) generation metrics of sampling seed ``seed``, stage seconds."""
    from semtok.pipelines.suite_t2i import collect_t2i

    if not (chain / "eval_val.json").exists():
        return {}
    recon = json.loads((chain / "eval_val.json").read_text())
    probe = _summary(chain / "probe_val.json")
    result: dict[str, Any] = {
        "codebook_size": recon.get("num_codes"),
        "usage": recon.get("usage"),
        "perplexity": recon.get("perplexity"),
        "rfid": recon.get("rfid"),
        "psnr": recon.get("psnr"),
        "ssim": recon.get("ssim"),
        "teacher_cosine": recon.get("teacher_cosine"),
        "probe_top1": probe.get("val_top1"),
        "ar_val_nll": _summary(chain / "ar_run" / "summary.json").get("val_nll"),
        "nar_val_masked_nll": _summary(chain / "nar_run" / "summary.json").get("val_masked_nll"),
        "fid_extractor": recon.get("fid_extractor"),
        "fid_reference": recon.get("fid_reference"),
        "times": _summary(chain / "times.json"),
    }
    result.update(generation_stats(chain, (seed,), ""))
    result.update(generation_stats(chain, (seed,), "nar_"))
    result.update(collect_t2i(chain, (seed,)))
    return result


def collect_row(row: str, row_dir: Path, seeds: tuple[int, ...]) -> dict[str, Any]:
    """The row's numbers over its chains ``row_dir/seed{S}`` for S in ``seeds``: every metric as mean (its plain
    key), sample sd (``_std``, None with one chain) and the chains' values (``_per_seed``); chains without their
    files are left out (``seeds``: the training seeds of the chains found, ``chains``: how many).

    AR generation metrics keep their plain keys (``gfid``, ``class_accuracy``...); the masked model's carry the
    prefix ``nar_`` (``nar_gfid``, ``nar_class_accuracy``...), None where its stages have not run; the text-to-image
    branch's carry ``t2i_`` (:func:`semtok.pipelines.suite_t2i.collect_t2i`; None for ablation rows / no t2i).
    ``times``: seconds per stage summed over the chains (``times_per_seed``: each chain's)."""
    from semtok.pipelines.suite_t2i import T2I_KEYS

    found = [(seed, chain) for seed in seeds if (chain := collect_chain(row_dir / f"seed{seed}", seed))]
    chains = [chain for _, chain in found]
    result: dict[str, Any] = {
        "row": row,
        "label": LABELS[row],
        "ablation": ROWS[row][3],
        "seeds": [seed for seed, _ in found],
        "chains": len(found),
    }
    keys = [
        *CHAIN_KEYS,
        *GENERATION_KEYS,
        *(f"nar_{key}" for key in GENERATION_KEYS),
        *(f"t2i_{key}" for key in T2I_KEYS),
    ]
    for key in keys:
        result.update(stats([chain.get(key) for chain in chains], key))
    for key in (
        "codebook_size",
        "fid_extractor",
        "fid_reference",
        "gfid_reference",
        "nar_gfid_reference",
        "t2i_gfid_reference",
        "t2i_prompts",
    ):
        result[key] = next((chain[key] for chain in chains if chain.get(key) is not None), None)
    times: dict[str, float] = {}
    for chain in chains:
        for stage, seconds in chain["times"].items():
            times[stage] = round(times.get(stage, 0.0) + seconds, 1)
    result["times"] = times
    result["times_per_seed"] = [chain["times"] for chain in chains]
    return result
