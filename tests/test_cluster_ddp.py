"""The online Cluster codebook under two CPU processes (gloo) with different data stays bit-identical."""

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F

from ddp import needs_distributed, run_processes
from semtok.quantizers.online_codebook import OnlineCodebook

WORLD = 2


def worker(rank: int) -> dict:
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
    return {"state": codebook.state_dict(), "reseeded": reseeded}


@pytest.mark.slow
@needs_distributed
def test_online_codebook_identical_across_processes():
    results = run_processes(worker, WORLD)
    assert results[0]["reseeded"] > 0 and results[0]["reseeded"] == results[1]["reseeded"]
    for key, value in results[0]["state"].items():
        assert torch.equal(value, results[1]["state"][key]), key
