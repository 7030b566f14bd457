"""The training engine, for every registered stage: exact resume after a stop, preemption before the first
checkpoint, gradient accumulation, and the run-folder rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from accelerate.utils import DynamoBackend
from safetensors.torch import load_file

from conftest import TINY_VQKD
from semtok.config import load_config
from semtok.data.token_file import write_token_file
from semtok.errors import SemtokError
from semtok.training import train
from semtok.training.engine import Engine
from semtok.training.registry import STAGES, config_class

STEPS = ["train.steps=4", "train.checkpoint_every=2", "train.log_every=1", "train.warmup_steps=1"]
TINY_CONV = [
    "model.conv.channels=8",
    "model.conv.channel_mult=[1, 2]",
    "model.conv.z_channels=8",
    "model.conv.num_res_blocks=1",
    "train.batch_size=4",
    "loss.disc_start=2",
    "loss.disc_channels=8",
    "loss.disc_layers=1",
    "loss.perceptual=none",
]
TEACHER = ["model.teacher.name=effnet-lite0", "model.teacher.input_size=64", "model.teacher.stride=16"]


def token_file(path: Path) -> Path:
    ids = torch.randint(0, 16, (32, 2, 4), generator=torch.Generator().manual_seed(0))
    meta = {
        "tokenizer": {"path": "", "kind": "none", "config": {}},
        "num_classes": 2,
        "class_names": ["a", "b"],
    }
    return write_token_file(path, ids, torch.arange(32) % 2, 16, meta)


def feature_tokenizer(image_folder: Path, out: Path) -> Path:
    """A VQ-KD tokenizer folder (one training step) for the decoder stage to attach a pixel decoder to."""
    overrides = [*TINY_VQKD, "train.steps=1", f"data.dataset={image_folder}"]
    train("vqkd", load_config(config_class("vqkd"), "vqkd-mnist", overrides), out, progress=False)
    return out


def stage_overrides(stage: str, image_folder: Path, tmp_path: Path) -> list[str]:
    """A tiny config of every registered stage (a stage missing here fails the test: add one)."""
    data = f"data.dataset={image_folder}"
    if stage == "vqkd":
        return [*TINY_VQKD, data]
    if stage == "cluster":
        return [
            *TEACHER,
            "model.num_codes=16",
            "model.kmeans_iters=2",
            "codebook.reseed_steps=1",
            "train.batch_size=8",
            data,
        ]
    if stage in ("vqgan", "cvq"):
        return [*TINY_CONV, "model.quantizer.num_codes=16", "model.quantizer.code_dim=8", data]
    if stage == "fsq":
        return [*TINY_CONV, "model.levels=[4, 4]", data]
    if stage == "decoder":
        tokenizer = feature_tokenizer(image_folder, tmp_path / "features")
        conv = [o for o in TINY_CONV if not o.startswith("model.")]
        return [
            f"tokenizer={tokenizer}",
            "decoder.conv.channels=8",
            "decoder.conv.channel_mult=[1, 1, 1, 1]",
            *conv,
            data,
        ]
    if stage == "judge":
        return [
            "model.image_size=16",
            "model.num_classes=2",
            "model.width=8",
            "model.stages=2",
            "train.batch_size=4",
            data,
        ]
    if stage in ("ar", "nar"):
        tokens = token_file(tmp_path / "tokens")
        return [
            "model.depth=1",
            "model.width=16",
            "model.heads=2",
            "train.batch_size=8",
            f"data.tokens={tokens}",
        ]
    raise AssertionError(f"no tiny config for stage '{stage}': add one to stage_overrides")


def run(stage: str, overrides: list[str], out: Path, **kwargs) -> dict:
    spec = STAGES[stage]
    config = load_config(config_class(stage), spec.default_config, [*overrides, *STEPS])
    return train(stage, config, out, progress=False, **kwargs)


def model_tensors(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(next(out.glob("*/model.safetensors"))))


def assert_same_weights(a: Path, b: Path) -> None:
    first, second = model_tensors(a), model_tensors(b)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(STAGES))
def test_every_stage_resumes_exactly(stage, image_folder, tmp_path, monkeypatch):
    overrides = stage_overrides(stage, image_folder, tmp_path)
    run(stage, overrides, tmp_path / "straight")

    # Stopped after step 2 (a checkpoint), then resumed: the same weights as the straight run.
    assert run(stage, overrides, tmp_path / "split", stop_at=2)["stopped_at_step"] == 2
    run(stage, overrides, tmp_path / "split", resume=True)
    assert_same_weights(tmp_path / "straight", tmp_path / "split")

    # Killed after step 1, before any checkpoint (a preempted job that always passes --resume): resuming
    # starts from step 0, twice over, and still ends with the straight run's weights and a log of each step once.
    class Killed(Exception):
        pass

    def kill(self, checkpointed):
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(Engine, "_checkpoint_if_due", kill)
        for _ in range(2):
            with pytest.raises(Killed):
                run(stage, overrides, tmp_path / "killed", resume=True)
    assert (tmp_path / "killed" / "config.yaml").exists() and not (
        tmp_path / "killed" / "checkpoints"
    ).exists()
    summary = run(stage, overrides, tmp_path / "killed", resume=True)
    assert summary["resumed_from_step"] is None and summary["steps"] == 4
    assert_same_weights(tmp_path / "straight", tmp_path / "killed")
    steps = [
        json.loads(line)["step"] for line in (tmp_path / "killed" / "log.jsonl").read_text().splitlines()
    ]
    assert sorted(set(steps)) == [1, 2, 3, 4] and steps.count(2) == steps.count(1)


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    """AR (a mean loss, no batch statistics, no dropout): 2 micro-batches of 4 give the gradient of one
    batch of 8."""
    tokens = token_file(tmp_path / "tokens")
    base = [
        "model.depth=1",
        "model.width=16",
        "model.heads=2",
        "model.class_dropout=0.0",
        "model.dropout=0.0",
        f"data.tokens={tokens}",
    ]
    run("ar", [*base, "train.batch_size=8"], tmp_path / "one")
    run("ar", [*base, "train.batch_size=8", "train.grad_accum=2"], tmp_path / "two")
    one, two = model_tensors(tmp_path / "one"), model_tensors(tmp_path / "two")
    for key in one:
        assert torch.allclose(one[key], two[key], atol=1e-5, rtol=1e-4), key
    with pytest.raises(SemtokError, match="train.grad_accum"):
        run("ar", [*base, "train.batch_size=6", "train.grad_accum=4"], tmp_path / "bad")


def test_run_folder_rules(tmp_path):
    tokens = token_file(tmp_path / "tokens")
    overrides = [
        "model.depth=1",
        "model.width=16",
        "model.heads=2",
        "train.batch_size=8",
        f"data.tokens={tokens}",
    ]
    run("ar", overrides, tmp_path / "run")
    with pytest.raises(SemtokError, match="already holds a run"):
        run("ar", overrides, tmp_path / "run")
    config = load_config(config_class("ar"), "ar-mnist", overrides)
    before = (config.model.vocab_size, config.model.grid)
    train("ar", config, tmp_path / "other", progress=False)
    assert (config.model.vocab_size, config.model.grid) == before  # derived values stay in the stage's copy
    saved = (tmp_path / "other" / "config.yaml").read_text()
    assert "vocab_size: 16" in saved and "kind: ar" in saved


@pytest.mark.slow  # inductor compiles the tiny AR model's step on the CPU (tens of seconds)
def test_compiled_training_gives_the_eager_weights(tmp_path):
    """train.compile=true: Accelerate compiles the trained module (inductor); the saved weights stay plain (no
    ``_orig_mod.`` prefix) and equal the eager run's to float tolerance."""
    tokens = token_file(tmp_path / "tokens")
    base = ["model.depth=1", "model.width=16", "model.heads=2", "model.dropout=0.0", "train.batch_size=8"]
    base.append(f"data.tokens={tokens}")
    run("ar", base, tmp_path / "eager")
    run(
        "ar", [*base, "train.compile=true"], tmp_path / "compiled"
    )  # compiled although an eager run came first
    assert AcceleratorState._shared_state["dynamo_plugin"].backend == DynamoBackend.INDUCTOR
    eager, compiled = model_tensors(tmp_path / "eager"), model_tensors(tmp_path / "compiled")
    assert eager.keys() == compiled.keys()
    for key in eager:
        assert torch.allclose(eager[key], compiled[key], atol=1e-4, rtol=1e-3), key
    # an eager stage after a compiled one in the same process (the demo, the suite) runs eager (Accelerate keeps
    # one dynamo backend per process unless its state is reset)
    run("ar", base, tmp_path / "eager_again")
    assert AcceleratorState._shared_state["dynamo_plugin"].backend == DynamoBackend.NO
    again = model_tensors(tmp_path / "eager_again")
    assert all(torch.equal(eager[key], again[key]) for key in eager)
    summaries = [json.loads((tmp_path / r / "summary.json").read_text()) for r in ("compiled", "eager_again")]
    assert [s["compiled"] for s in summaries] == [True, False]
