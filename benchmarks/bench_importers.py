"""Full-size check of `semtok import`: random weights in the real taming f16 / LlamaGen VQ-16 layouts at 256 px.

The suite checks the importers at tiny sizes; this runs the same comparison with the real hyper-parameters (ch 128,
ch_mult [1, 1, 2, 2, 4], 2 ResNet blocks, attention at 16 px, z 256; taming 16384 x 256, LlamaGen 16384 x 8):
ids and reconstructions of semtok's tokenizer vs the plain-F re-implementation of the original forward in
tests/test_importers.py. Run: ``PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/bench_importers.py``
(about a minute and 2 GB on a CPU).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_importers as T  # noqa: E402


def main() -> None:
    T.CH, T.MULT, T.BLOCKS, T.Z = 128, (1, 1, 2, 2, 4), 2, 256
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for source, codes, embed in (("taming", 16384, 256), ("llamagen", 16384, 8)):
        T.CODES, T.EMBED = codes, embed
        state = T.random_state(T.original_layout(source, attn_levels=(4,)))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ckpt.pt"
            torch.save({"state_dict" if source == "taming" else "model": state}, path)
            start = time.perf_counter()
            tokenizer = T.SOURCES[source][1](path, image_size=256)
            imported = time.perf_counter() - start
        with torch.no_grad():
            ref_ids, ref_out = T.reference_forward(state, source, x, attn_levels=(4,))
            ids = tokenizer.encode(x)
            diff = (tokenizer.decode(ids) - ref_out.clamp(-1, 1)).abs().max().item()
        params = sum(v.numel() for v in state.values())
        print(
            f"{source}: {params / 1e6:.2f}M params, import {imported:.1f} s, grid {tuple(ids.shape[1:])}, "
            f"ids equal {torch.equal(ids, ref_ids)}, max |recon diff| {diff:.2e}"
        )


if __name__ == "__main__":
    main()
