"""The training engine every stage plugs into (HF Accelerate).

A stage (:class:`Stage`) says what is trained: ``setup`` builds its data, modules and optimizers, ``step`` runs
one micro-batch and hands each loss to :meth:`Engine.optimize`, ``finish`` gives the model to save. The engine
owns the rest, once for every stage: the Accelerator (CPU or many processes, mixed precision, gradient
accumulation through ``accelerator.accumulate``), the run folder and its ``config.yaml``, exact resume from
atomic checkpoints (or from step 0 when a run was killed before its first one), the (seed, epoch) batch order,
the warm-up + cosine learning rate, the finite-loss check, gradient clipping, logging (``log.jsonl`` and the
Accelerate trackers in ``train.log_with``: TensorBoard by default) with windowed codebook statistics, the
progress bar and ``summary.json``.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import yaml
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from torch import nn
from tqdm.auto import tqdm

from semtok.config import to_dict
from semtok.data import build_dataset
from semtok.data.config import resolve_num_workers
from semtok.errors import SemtokError
from semtok.metrics.codebook import code_histogram, codebook_stats
from semtok.training.batches import batch_stream
from semtok.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from semtok.training.config import resolve_compile, resolve_precision
from semtok.training.schedule import warmup_cosine_lr
from semtok.training.tracking import JSONLinesTracker


@dataclass
class Setup:
    """What a stage trains, returned by :meth:`Stage.setup`.

    ``modules`` are prepared by Accelerate (wrapped for DDP) and reach ``step`` through ``engine.modules``;
    ``optimizers`` (same names where they optimise a module) are stepped by :meth:`Engine.optimize`.
    ``checkpointed``: the (unwrapped) modules a checkpoint holds (default: ``modules``). ``scheduled``: the
    optimizers whose learning rate follows ``train.lr``'s warm-up + cosine (default: all); ``clipped``: those
    whose module's gradients are clipped to ``train.grad_clip`` (default: all). ``num_codes`` > 0: ``step``
    returns ``"ids"`` and the engine logs the window's codebook usage and perplexity.
    """

    train_set: Any
    modules: dict[str, nn.Module]
    optimizers: dict[str, torch.optim.Optimizer]
    checkpointed: dict[str, nn.Module] | None = None
    scheduled: tuple[str, ...] | None = None
    clipped: tuple[str, ...] | None = None
    num_codes: int = 0
    windowed: tuple[str, ...] = ()  # logged as the mean over the log window instead of the last value
    progress: tuple[str, ...] = ()  # logged keys shown on the progress bar


class Stage:
    """One training stage. Subclasses set ``config_class`` and ``folder`` and implement the three hooks.

    ``name`` is the run kind (``config.yaml`` and every checkpoint record it; resume checks it). A stage keeps
    derived values (teacher dim, class names) in its own copy of the config, never in the caller's.
    """

    config_class: ClassVar[type]
    folder: ClassVar[str] = "tokenizer"  # OUT/<folder> receives the final model

    def __init__(self, config: Any, name: str) -> None:
        self.config = config
        self.name = name

    def saved_config(self) -> dict[str, Any]:
        """What ``config.yaml`` records (``--resume`` reads it back)."""
        return {"kind": self.name, **to_dict(self.config)}

    def setup(self, engine: Engine) -> Setup:
        raise NotImplementedError

    def image_train_set(self, image_size: int) -> Any:
        """The train split of ``config.data`` at ``image_size`` px, with its augmentation (seeded by
        ``train.seed``): what the image stages train on."""
        data = self.config.data
        return build_dataset(
            data.dataset,
            "train",
            image_size,
            augment=data.augment,
            crop_scale=data.crop_scale,
            seed=self.config.train.seed,
            labels=data.labels,
        )

    def after_resume(self, engine: Engine) -> None:
        """Called once the checkpoint (if any) is loaded and the modules are prepared (e.g. to cache targets)."""

    def step(self, batch: tuple[torch.Tensor, ...], engine: Engine) -> dict[str, Any]:
        """Train on one micro-batch ``(inputs, labels, indices)``: call ``engine.optimize`` with each loss; return
        the scalars to log (0-d tensors or floats; plus ``"ids"`` when ``Setup.num_codes`` is set)."""
        raise NotImplementedError

    def finish(self, engine: Engine) -> tuple[nn.Module, dict[str, Any]]:
        """On the main process after the last step: (the model to save into ``OUT/<folder>``, summary fields)."""
        raise NotImplementedError

    def summary_lines(self, summary: dict[str, Any]) -> list[str]:
        """What the CLI prints when the stage has finished."""
        return [f"{self.folder}: {summary[self.folder]}"]


class Engine:
    """Runs one :class:`Stage` into ``out_dir``; see the module docstring and :func:`semtok.training.train`."""

    def __init__(self, stage: Stage, out_dir: str | Path, progress: bool = True) -> None:
        self.stage = stage
        self.out_dir = Path(out_dir)
        self.train = stage.config.train
        self.show_progress = progress
        self.jsonl = JSONLinesTracker(self.out_dir)
        precision = resolve_precision(self.train.mixed_precision)
        self.compiled = resolve_compile(self.train)
        backend = "inductor" if self.compiled else "no"
        shared = AcceleratorState._shared_state
        plugin = shared.get("dynamo_plugin")
        if shared.get("_mixed_precision", precision) != precision or (
            plugin is not None and str(plugin.backend.value).lower() != backend
        ):
            # Accelerate keeps one precision and one dynamo backend per process; a pipeline (demo, suite) runs
            # stages of different precisions, compiled or not, one after another in one process (without the
            # reset an eager stage after a compiled one was compiled too). The process group (PartialState) is
            # kept.
            AcceleratorState._reset_state()
        try:
            self.accelerator = Accelerator(
                mixed_precision=precision,
                cpu=not torch.cuda.is_available(),
                gradient_accumulation_steps=self.train.grad_accum,
                dynamo_backend=backend,
                log_with=[self.jsonl, *self.train.log_with],
                project_dir=str(self.out_dir),
            )
        except ValueError as error:  # e.g. a tracker in train.log_with whose package is not installed
            raise SemtokError(f"config key 'train.log_with': {error}") from None
        set_seed(self.train.seed, device_specific=False)
        if torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = self.train.tf32
            torch.backends.cudnn.allow_tf32 = self.train.tf32
        self.world = self.accelerator.num_processes
        self.is_main = self.accelerator.is_main_process
        if self.train.batch_size % (self.world * self.train.grad_accum):
            raise SemtokError(
                f"config key 'train.batch_size': {self.train.batch_size} is not divisible by "
                f"{self.world} process(es) x {self.train.grad_accum} micro-batch(es) (train.grad_accum)"
            )
        self.step_index = 0  # optimizer steps done
        self.last_step = self.train.steps
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def is_log_step(self) -> bool:
        """Whether the optimizer step being taken now is logged (``train.log_every`` and the last step)."""
        done = self.step_index + 1
        return done % self.train.log_every == 0 or done == self.last_step

    def optimize(self, name: str, loss: torch.Tensor) -> None:
        """Backward ``loss`` into optimizer ``name``'s parameters; clip and step it at the end of an
        accumulation window (Accelerate skips the step inside one). A non-finite loss is a SemtokError."""
        if not torch.isfinite(loss):
            raise SemtokError(
                f"loss became {loss.item()} at step {self.step_index}: lower train.lr or use mixed_precision=no"
            )
        optimizer = self.optimizers[name]
        self.accelerator.backward(loss)
        if self.train.grad_clip > 0 and name in self._clipped and self.accelerator.sync_gradients:
            self.accelerator.clip_grad_norm_(self.modules[name].parameters(), self.train.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def log(self, step: int, values: dict[str, float]) -> None:
        self.accelerator.log(values, step=step)

    def run(self, resume: bool = False, stop_at: int | None = None) -> dict[str, Any]:
        started = time.time()
        existing = self._check_run_dir(resume)
        setup = self.stage.setup(self)
        if self.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "config.yaml").write_text(
                yaml.safe_dump(self.stage.saved_config(), sort_keys=False)
            )
        checkpointed = setup.checkpointed or setup.modules
        start_step = 0
        if existing is not None:
            state = load_checkpoint(existing, checkpointed, setup.optimizers, kind=self.stage.name)
            start_step = state["step"]
        names = list(setup.modules) + list(setup.optimizers)
        prepared = self.accelerator.prepare(*setup.modules.values(), *setup.optimizers.values())
        prepared = prepared if isinstance(prepared, tuple) else (prepared,)
        self.modules = dict(zip(names[: len(setup.modules)], prepared[: len(setup.modules)]))
        self.optimizers = dict(zip(names[len(setup.modules) :], prepared[len(setup.modules) :]))
        scheduled = setup.scheduled if setup.scheduled is not None else tuple(self.optimizers)
        self._clipped = setup.clipped if setup.clipped is not None else tuple(self.optimizers)
        self.step_index = start_step
        self.last_step = min(self.train.steps, stop_at) if stop_at else self.train.steps
        self.stage.after_resume(self)

        self.jsonl.resume_step = start_step
        self.accelerator.init_trackers("tb")
        micro = self.train.grad_accum
        stream = batch_stream(
            setup.train_set,
            self.train.batch_size // micro,
            self.train.seed,
            start_step * micro,
            self.accelerator.process_index,
            self.world,
            resolve_num_workers(getattr(self.stage.config.data, "num_workers", 0), setup.train_set),
        )
        bar = tqdm(
            total=self.train.steps,
            initial=start_step,
            desc=self.stage.name,
            disable=not (self.is_main and self.show_progress),
            dynamic_ncols=True,
        )
        window_counts = torch.zeros(max(setup.num_codes, 1), dtype=torch.long)
        window_sums: dict[str, float] = {}
        window_steps = 0
        values: dict[str, Any] = {}
        last_logged: dict[str, float] = {}
        for module in self.modules.values():
            module.train()
        while self.step_index < self.last_step:
            lr = warmup_cosine_lr(
                self.step_index, self.train.lr, self.train.warmup_steps, self.train.steps, self.train.min_lr
            )
            for name in scheduled:
                for group in self.optimizers[name].param_groups:
                    group["lr"] = lr
            for _ in range(micro):
                batch = next(stream)
                with self.accelerator.accumulate(*self.modules.values()):
                    values = self.stage.step(batch, self)
                if setup.num_codes:
                    window_counts += code_histogram(values.pop("ids").detach(), setup.num_codes)
            for key in setup.windowed:
                window_sums[key] = window_sums.get(key, 0.0) + float(values[key])
            window_steps += 1
            logging_now = self.is_log_step
            self.step_index += 1
            if logging_now:
                last_logged = {key: float(value) for key, value in values.items()}
                for key in setup.windowed:
                    last_logged[key] = window_sums.pop(key) / window_steps
                if setup.num_codes:
                    stats = codebook_stats(window_counts)
                    window_counts.zero_()
                    last_logged["codebook/usage_window"] = float(stats["usage"])
                    last_logged["codebook/perplexity_window"] = float(stats["perplexity"])
                last_logged["lr"] = lr
                window_steps = 0
                self.log(self.step_index, last_logged)
                bar.set_postfix({key.split("/")[-1]: f"{last_logged[key]:.4g}" for key in setup.progress})
            bar.update(1)
            self._checkpoint_if_due(checkpointed)
        bar.close()
        self.accelerator.wait_for_everyone()

        folder = self.stage.folder
        summary: dict[str, Any] = {}
        if self.is_main and self.step_index < self.train.steps:
            summary = {"kind": self.stage.name, "stopped_at_step": self.step_index, "steps": self.train.steps}
            summary[folder] = None
        elif self.is_main:
            model, fields = self.stage.finish(self)
            model.eval().save_pretrained(self.out_dir / folder)
            summary = {
                "kind": self.stage.name,
                "steps": self.train.steps,
                "resumed_from_step": start_step if existing is not None else None,
                "train_seconds_this_session": round(time.time() - started, 1),
                "final_losses": last_logged,
                **fields,
                "train_images": len(setup.train_set),
                "skipped_files": len(getattr(setup.train_set, "skipped_files", [])),
                "processes": self.world,
                "device": str(self.device),
                "mixed_precision": str(self.accelerator.mixed_precision),
                "compiled": self.compiled,
                folder: str(self.out_dir / folder),
            }
            (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        for tracker in self.accelerator.trackers:
            tracker.finish()
        return summary

    def _check_run_dir(self, resume: bool) -> Path | None:
        """The checkpoint to resume from. A folder holding a checkpoint needs ``resume``; ``resume`` on a folder
        with none yet (a run killed before its first checkpoint, or never started) starts from step 0."""
        existing = latest_checkpoint(self.out_dir)
        if existing is not None and not resume:
            raise SemtokError(
                f"'{self.out_dir}' already holds a run (checkpoint {existing.name}): resume it (resume=True) or "
                "use another output folder"
            )
        if resume and existing is None and self.is_main:
            tqdm.write(f"semtok: no checkpoint in '{self.out_dir}' yet: starting at step 0", file=sys.stderr)
        return existing

    def _checkpoint_if_due(self, checkpointed: dict[str, nn.Module]) -> None:
        step = self.step_index
        if step % self.train.checkpoint_every and step != self.last_step:
            return
        self.accelerator.wait_for_everyone()
        if self.is_main:
            modules = {name: self.accelerator.unwrap_model(module) for name, module in checkpointed.items()}
            optimizers = {name: optimizer for name, optimizer in self.optimizers.items()}
            info = {"kind": self.stage.name, "world_size": self.world}
            save_checkpoint(self.out_dir, step, modules, optimizers, info, keep=self.train.keep_checkpoints)
