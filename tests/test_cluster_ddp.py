"""The online Cluster codebook under two CPU processes (gloo) with different data stays bit-identical."""

import os
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from semtok.quantizers.online_codebook import OnlineCodebook

WORLD = 2


def worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(100 + rank)  # a different RNG stream and different data in each process
        codebook = OnlineCodebook(16, 8, kmeans_iters=3)
        optimizer = torch.optim.Adam(codebook.parameters(), lr=1e-2)
        reseeded = 0
        for step in range(6):
            x = F.normalize(torch.randn(64, 8) + (3.0 if step else 0.0) * torch.eye(8)[rank], dim=-1)
            if not bool(codebook.initialized):
                codebook.initialize(x)
            _, _, aux = codebook(x)
            counts = aux["counts"]
            optimizer.zero_grad()
            aux["loss"].backward()
            dist.all_reduce(codebook.weight.grad)  # what DDP does
            codebook.weight.grad /= WORLD
            optimizer.step()
            dist.all_reduce(counts)
            reseeded += codebook.reseed(x, counts, reseed_steps=1)
        torch.save(
            {"state": codebook.state_dict(), "reseeded": reseeded}, os.path.join(out_dir, f"rank{rank}.pt")
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed not built")
@pytest.mark.skipif(sys.platform == "win32", reason="gloo file:// rendezvous on Linux/macOS")
def test_online_codebook_identical_across_processes(tmp_path):
    mp.spawn(worker, args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=WORLD, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    assert results[0]["reseeded"] > 0 and results[0]["reseeded"] == results[1]["reseeded"]
    for key, value in results[0]["state"].items():
        assert torch.equal(value, results[1]["state"][key]), key
