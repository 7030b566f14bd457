"""Several processes over one job (``torchrun`` / ``accelerate launch``): who am I, which batches are mine, gather.

The verbs that only read models (tokenize, sample, evaluate) split their work by *global batch*: batch ``j`` of
``batch_size`` items (items ``[j * batch_size, (j + 1) * batch_size)``) goes to process ``j % world_size``. Every
random draw of batch ``j`` is seeded by ``j`` (and the user's seed), never by the process, so the results are the
same whatever the number of processes; only the batch size is part of the seed rule.

Under ``torchrun`` / ``accelerate launch`` (``WORLD_SIZE`` > 1 in the environment) :func:`join` starts the process
group through Accelerate's ``PartialState`` (gloo on CPUs, NCCL on GPUs); one process is the plain case.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Processes:
    """This process's place in the job: ``rank`` in ``[0, world_size)``; ``device`` its accelerator (or CPU)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def batches(self, num_items: int, batch_size: int) -> list[tuple[int, int, int]]:
        """This process's global batches ``(j, start, stop)`` of ``num_items`` items: every ``world_size``-th
        batch, starting at batch ``rank``."""
        starts = range(0, num_items, batch_size)
        return [
            (j, start, min(num_items, start + batch_size))
            for j, start in enumerate(starts)
            if j % self.world_size == self.rank
        ]

    def gather(self, value: Any) -> list[Any]:
        """Every process's ``value`` (picklable), indexed by rank, on every process (one process: ``[value]``)."""
        if self.world_size == 1:
            return [value]
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()


def join() -> Processes:
    """The job this process belongs to: from an initialised ``torch.distributed`` group, else from the launcher's
    environment (``WORLD_SIZE`` > 1: the group is started here), else one process (CPU, or the first GPU)."""
    if dist.is_available() and dist.is_initialized():
        device = torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else None
        return Processes(dist.get_rank(), dist.get_world_size(), device or torch.device("cpu"))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from accelerate import PartialState

        state = PartialState(
            cpu=not torch.cuda.is_available()
        )  # without cpu=True a CPU job is seen as 1 process
        return Processes(state.process_index, state.num_processes, state.device)
    return Processes(0, 1, torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))


def in_batch_order(parts: list[list[tuple[int, Any]]]) -> list[Any]:
    """Gathered ``[(j, value), ...]`` lists of every process -> the values sorted by global batch ``j``."""
    return [value for _, value in sorted((pair for part in parts for pair in part), key=lambda p: p[0])]
