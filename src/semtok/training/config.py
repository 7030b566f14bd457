"""The config section every training stage shares: optimisation (``train``)."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Literal

from semtok.errors import SemtokError


@dataclass
class TrainConfig:
    """Optimisation of one stage. ``batch_size`` is the global batch, split evenly across processes."""

    steps: int = 1000
    batch_size: int = 64
    lr: float = 2e-4
    min_lr: float = 1e-5
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0  # max gradient norm; 0 disables
    grad_accum: int = 1  # micro-batches per optimizer step (batch_size is the global batch of one step)
    optimizer: str = (
        "adamw"  # adamw (decoupled decay, none on biases/norms/positions) | adam (L2 decay on all)
    )
    # no | bf16 | fp16 | auto (quantizer math always runs in fp32); auto = bf16 where the hardware has native
    # bf16 arithmetic (a CUDA GPU that supports it, a CPU with AVX512-BF16 / AMX), else no: see resolve_precision
    mixed_precision: str = "no"
    tf32: bool = True  # on GPUs: TF32 matmuls and convolutions for the fp32 parts (Ampere and later)
    # torch.compile the trained modules (inductor; the first steps pay the compile time); auto = compile runs of
    # at least COMPILE_MIN_STEPS steps where inductor can build kernels (see resolve_compile)
    compile: bool | Literal["auto"] = False
    seed: int = 0
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    log_with: tuple[str, ...] = (
        "tensorboard",
    )  # Accelerate trackers beside log.jsonl: tensorboard, wandb, ...
    cache_teacher: bool = True  # cache teacher targets when the data has no random augmentation
    max_cache_gb: float = 4.0

    def __post_init__(self) -> None:
        if self.mixed_precision not in ("no", "bf16", "fp16", "auto"):
            raise SemtokError(
                "config key 'train.mixed_precision': expected no, bf16, fp16 or auto, got "
                f"{self.mixed_precision!r}"
            )
        if self.optimizer not in ("adamw", "adam"):
            raise SemtokError(f"config key 'train.optimizer': expected adamw or adam, got {self.optimizer!r}")
        for key in ("steps", "batch_size", "log_every", "checkpoint_every", "grad_accum"):
            if getattr(self, key) <= 0:
                raise SemtokError(
                    f"config key 'train.{key}': expected a positive integer, got {getattr(self, key)}"
                )


# the transformers' compile pays for itself after ~180-260 steps on the 2-core CPU (bench_compile.py)
COMPILE_MIN_STEPS = 300


def resolve_compile(train: TrainConfig) -> bool:
    """``train.compile`` as a yes / no: ``auto`` -> compile when the run has at least :data:`COMPILE_MIN_STEPS`
    steps and inductor can build kernels here: a CUDA GPU with Triton, or on the CPU a C++ compiler (``$CXX`` or
    inductor's ``cpp.cxx``, ``g++`` by default). On the 2-core CPU here (bench_compile.py) the AR and masked
    transformers' steps are 1.33x / 1.51x faster compiled (~30 s of compiling on a cold cache); VQ-KD's and the
    conv decoder's are not faster, so their recipes leave it off."""
    import shutil

    import torch

    if train.compile != "auto":
        return bool(train.compile)
    if train.steps < COMPILE_MIN_STEPS:
        return False
    if torch.cuda.is_available():
        return importlib.util.find_spec("triton") is not None
    import torch._inductor.config as inductor

    compilers = [os.environ.get("CXX"), *inductor.cpp.cxx]
    return any(shutil.which(c) for c in compilers if c)


def resolve_precision(mixed_precision: str) -> str:
    """``train.mixed_precision`` as Accelerate takes it: ``auto`` -> ``bf16`` on a CUDA GPU with bf16 support or
    a CPU whose oneDNN has native bf16 kernels (AVX512-BF16 or AMX; VQ-KD's training step on the 2-core AMD EPYC
    here: 1.86x faster per step than fp32, benchmarks/bench_train_steps.py), else ``no`` (emulated bf16 is slower than fp32); other values unchanged."""
    import torch

    if mixed_precision != "auto":
        return mixed_precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    return (
        "bf16"
        if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        else "no"
    )
