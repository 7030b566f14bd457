"""Two CPU processes (gloo) with different data end with bit-identical codebooks."""

import pytest
import torch

from ddp import needs_distributed, run_processes
from semtok.quantizers import VectorQuantizer

WORLD = 2
DISTANCES = ("cosine", "l2")


def make_batches(rank: int) -> list[torch.Tensor]:
    """Per-process data: a broad first batch (k-means init; its size differs by rank), then batches
    near only 3 of the process's clusters, so most codes go unused and get restarted."""
    g = torch.Generator().manual_seed(1000 + rank)
    centers = 3 * torch.randn(24, 8, generator=g)

    def around(c: torch.Tensor, n: int, noise: float) -> torch.Tensor:
        ids = torch.randint(c.shape[0], (n,), generator=g)
        return c[ids] + noise * torch.randn(n, 8, generator=g)

    return [around(centers, 200 + 37 * rank, 0.1)] + [around(centers[:3], 96, 0.5) for _ in range(5)]


def train(rank: int, distance: str) -> tuple[VectorQuantizer, int]:
    torch.manual_seed(100 + rank)  # a different RNG stream in each process, on purpose
    vq = VectorQuantizer(32, 8, distance=distance, dead_code_steps=2, kmeans_iters=5).train()
    restarted = 0
    for batch in make_batches(rank):
        restarted += vq(batch)[2]["restarted"]
    return vq, restarted


def worker(rank: int) -> dict:
    results = {}
    for distance in DISTANCES:
        vq, restarted = train(rank, distance)
        results[distance] = {"state": vq.state_dict(), "restarted": restarted}
    return results


@pytest.mark.slow
@needs_distributed
def test_codebooks_identical_across_processes():
    results = run_processes(worker, WORLD)
    for distance in DISTANCES:
        states = [r[distance]["state"] for r in results]
        assert results[0][distance]["restarted"] > 0  # dead-code restart happened
        assert results[0][distance]["restarted"] == results[1][distance]["restarted"]
        for key in states[0]:
            assert torch.equal(states[0][key], states[1][key]), (distance, key)
        # a single process on its own data ends elsewhere: the synchronisation matters
        alone, _ = train(0, distance)
        assert not torch.allclose(alone.codebook, states[0]["codebook"])


def all_reduce_worker(rank: int, fail_rank: int) -> float:
    if rank == fail_rank:
        raise ValueError(f"boom on rank {rank}")
    total = torch.tensor(float(rank + 1))
    torch.distributed.all_reduce(total)
    return float(total)


@pytest.mark.slow
@needs_distributed
def test_run_processes_returns_results_and_reports_a_failing_rank():
    assert run_processes(all_reduce_worker, WORLD, -1) == [3.0, 3.0]  # ranks 0 and 1 joined one group
    with pytest.raises(RuntimeError, match=r"(?s)rank 1 of 2 failed first.*ValueError: boom on rank 1"):
        run_processes(all_reduce_worker, WORLD, 1)
