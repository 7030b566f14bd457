"""The VQ-KD training loop: exact resume, checkpoints, outputs, evaluate and tokenize end to end."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from semtok.config import load_config
from semtok.data.token_file import read_token_file
from semtok.errors import SemtokError
from semtok.evaluation.tokenizer import evaluate_tokenizer
from semtok.tokenizers import Tokenizer
from semtok.training import train
from semtok.training.checkpoint import latest_checkpoint
from semtok.training.vqkd import VQKDRunConfig


def run(overrides, out, **kwargs):
    return train("vqkd", load_config(VQKDRunConfig, "vqkd-mnist", overrides), out, progress=False, **kwargs)


@pytest.mark.slow
def test_resume_is_exact(tiny_vqkd_overrides, tmp_path):
    run(tiny_vqkd_overrides, tmp_path / "straight")
    summary = run(tiny_vqkd_overrides, tmp_path / "split", stop_at=5)
    assert summary["stopped_at_step"] == 5
    assert latest_checkpoint(tmp_path / "split").name == "step_00000005"
    run(tiny_vqkd_overrides, tmp_path / "split", resume=True)
    straight = load_file(str(tmp_path / "straight" / "tokenizer" / "model.safetensors"))
    split = load_file(str(tmp_path / "split" / "tokenizer" / "model.safetensors"))
    assert straight.keys() == split.keys()
    for key in straight:
        assert torch.allclose(straight[key].float(), split[key].float(), atol=1e-6, rtol=0), key
    # The codebook changed during training (the comparison is not trivially true).
    first = load_file(str(tmp_path / "split" / "checkpoints" / "step_00000005" / "model.safetensors"))
    assert not torch.equal(first["quantizer.codebook"], straight["quantizer.codebook"])


@pytest.mark.slow
def test_outputs_evaluate_and_tokenize(tiny_vqkd_overrides, tmp_path):
    out = tmp_path / "run"
    summary = run(tiny_vqkd_overrides, out)
    assert summary["teacher_features"].startswith("cached")
    for name in (
        "config.yaml",
        "summary.json",
        "log.jsonl",
        "tokenizer/config.json",
        "tokenizer/model.safetensors",
    ):
        assert (out / name).exists(), name
    assert list((out / "tb").iterdir()), "no TensorBoard events"
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 11))
    results = evaluate_tokenizer(out, tiny_vqkd_overrides[-1].split("=", 1)[1], "val", progress=False)
    assert 0 < results["usage"] <= 1 and 1 <= results["perplexity"] <= 32
    assert -1 <= results["teacher_cosine"] <= 1 and results["images"] == 6

    from semtok.cli import main

    data = tiny_vqkd_overrides[-1].split("=", 1)[1]
    assert (
        main(
            [
                "tokenize",
                str(out),
                "--data",
                data,
                "--split",
                "val",
                "--out",
                str(tmp_path / "tok"),
                "--no-progress",
            ]
        )
        == 0
    )
    ids, labels, manifest = read_token_file(tmp_path / "tok.json")
    assert ids.shape == (6, 4, 4) and ids.dtype == np.uint16 and isinstance(ids, np.memmap)
    assert labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert (
        manifest["grid"] == [4, 4] and manifest["num_codes"] == 32 and manifest["tokenizer"]["kind"] == "vqkd"
    )
    tokenizer = Tokenizer.from_pretrained(out / "tokenizer")
    from semtok.data import build_dataset

    images = torch.stack([build_dataset(data, "val", 32)[i][0] for i in range(6)])
    assert np.array_equal(tokenizer.encode(images).numpy(), ids.astype(np.int64))


def test_existing_run_needs_resume(tiny_vqkd_overrides, tmp_path):
    run([*tiny_vqkd_overrides, "train.steps=2"], tmp_path / "run")
    with pytest.raises(SemtokError, match="resume=True"):
        run([*tiny_vqkd_overrides, "train.steps=2"], tmp_path / "run")
    # resume on a folder with no checkpoint yet (a preempted job that always resumes) starts at step 0
    summary = run([*tiny_vqkd_overrides, "train.steps=2"], tmp_path / "empty", resume=True)
    assert summary["resumed_from_step"] is None and (tmp_path / "empty" / "tokenizer").exists()


def test_augmented_run_is_not_cached(tiny_vqkd_overrides, tmp_path):
    summary = run([*tiny_vqkd_overrides, "train.steps=2", "data.augment=crop_flip"], tmp_path / "aug")
    assert summary["teacher_features"].startswith("computed every step")


def test_train_compile_auto_compiles_long_runs_where_inductor_can_build(monkeypatch):
    import torch._inductor.config as inductor

    from semtok.config import load_config
    from semtok.training.ar import ARRunConfig
    from semtok.training.config import COMPILE_MIN_STEPS, TrainConfig, resolve_compile

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(inductor.cpp, "cxx", (None, "g++"))
    monkeypatch.setenv("CXX", "")
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}" if name == "g++" else None)
    assert resolve_compile(TrainConfig(steps=COMPILE_MIN_STEPS, compile="auto"))
    assert not resolve_compile(TrainConfig(steps=COMPILE_MIN_STEPS - 1, compile="auto"))  # would not pay off
    assert resolve_compile(TrainConfig(steps=1, compile=True))
    assert not resolve_compile(TrainConfig(steps=10**6))  # the default: eager
    monkeypatch.setattr("shutil.which", lambda name: None)  # no C++ compiler: eager
    assert not resolve_compile(TrainConfig(steps=10**6, compile="auto"))
    config = load_config(ARRunConfig, "ar-mnist", [])  # the transformer recipes ask for auto
    assert config.train.compile == "auto"
    assert load_config(ARRunConfig, "ar-mnist", ["train.compile=false"]).train.compile is False
    with pytest.raises(SemtokError, match="train.compile"):
        load_config(ARRunConfig, "ar-mnist", ["train.compile=sometimes"])


def test_mixed_precision_auto_is_bf16_only_with_native_bf16(monkeypatch):
    from semtok.training.config import resolve_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert resolve_precision("auto") == "bf16" and resolve_precision("no") == "no"
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)  # emulated: slower
    assert resolve_precision("auto") == "no" and resolve_precision("bf16") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_precision("auto") == "no"
