"""The machine and library versions a suite ran on (recorded in results.json and printed by the report)."""

from __future__ import annotations

from typing import Any

import torch


def machine_info() -> dict[str, Any]:
    """Python, torch, numpy and semtok versions, CPU model, core and thread counts, device."""
    import os
    import platform

    import numpy

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
    }
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(
                (line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), None
            )
        info["cpu"] = model or info["cpu"]
    except OSError:
        pass
    from semtok import __version__

    info["semtok"] = __version__
    return info
