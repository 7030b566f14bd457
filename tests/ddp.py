"""Run a function in several CPU processes joined by torch.distributed (gloo), for the DDP tests.

``run_processes(fn, world_size, *args)`` spawns ``world_size`` processes; each joins one gloo process group
(a free TCP port on 127.0.0.1), calls ``fn(rank, *args)`` and hands its return value back (anything
``torch.save`` can write). The results come back as a list indexed by rank. A worker that raises makes
``run_processes`` raise a ``RuntimeError`` naming the first rank that failed, with its traceback; a run that does not
finish within ``timeout_s`` is killed and reported the same way.

``fn`` must be a module-level function (spawn pickles it by name).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

needs_distributed = pytest.mark.skipif(
    not dist.is_available() or sys.platform == "win32",
    reason="needs torch.distributed with gloo (Linux/macOS)",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _entry(rank: int, fn: Callable[..., Any], world_size: int, port: int, out_dir: str, args: tuple) -> None:
    torch.set_num_threads(1)
    out = Path(out_dir)
    try:
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size
        )
        try:
            result = fn(rank, *args)
        except BaseException:
            # written before the group closes, so a failing rank's traceback predates its peers' errors
            (out / f"error{rank}.txt").write_text(traceback.format_exc())
            raise
        finally:
            dist.destroy_process_group()
    except BaseException:
        if not (out / f"error{rank}.txt").exists():
            (out / f"error{rank}.txt").write_text(traceback.format_exc())
        raise
    torch.save(result, out / f"result{rank}.pt")


def run_processes(fn: Callable[..., Any], world_size: int, *args: Any, timeout_s: float = 120.0) -> list[Any]:
    """``[fn(0, *args), ..., fn(world_size - 1, *args)]``, each run in its own process of one gloo group."""
    with tempfile.TemporaryDirectory(prefix="semtok-ddp-") as out_dir:
        context = mp.spawn(
            _entry, args=(fn, world_size, free_port(), out_dir, args), nprocs=world_size, join=False
        )
        deadline = time.monotonic() + timeout_s
        try:
            while not context.join(timeout=max(0.1, deadline - time.monotonic())):
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{world_size} processes did not finish within {timeout_s:.0f} s")
        except Exception as error:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
                process.join()
            # the first traceback written is the cause; later ones are usually peers losing their connection
            errors = sorted(Path(out_dir).glob("error*.txt"), key=lambda p: p.stat().st_mtime_ns)
            if errors:
                rank = errors[0].stem.removeprefix("error")
                others = [p.stem.removeprefix("error") for p in errors[1:]]
                also = f" (then ranks {others})" if others else ""
                raise RuntimeError(
                    f"rank {rank} of {world_size} failed first{also}:\n{errors[0].read_text()}"
                ) from None
            raise RuntimeError(f"{world_size} processes failed: {error}") from error
        missing = [r for r in range(world_size) if not os.path.exists(os.path.join(out_dir, f"result{r}.pt"))]
        if missing:
            raise RuntimeError(f"ranks {missing} of {world_size} exited without a result")
        return [torch.load(Path(out_dir) / f"result{r}.pt", weights_only=False) for r in range(world_size)]
