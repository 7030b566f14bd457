"""`semtok sample` / `evaluate --generation` / `train nar` on a masked (MaskGIT / MAGE) run: the same interface as
for an AR run, its own flags checked, one-line errors (exit 2)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import semtok
from semtok.cli import checks, main
from semtok.errors import SemtokError
from semtok.generators import ARConfig, ARTransformer
from semtok.generators.sampler import Sampler
from semtok.generators.sampling import MASK_SCHEDULE_NAMES, SamplingConfig
from semtok.pipelines.tokenize import tokenize_dataset
from semtok.tokenizers import ConvNetConfig, FSQConfig, FSQTokenizer
from semtok.visual.provenance import read_provenance

TINY_NAR = [
    "model.depth=1",
    "model.width=32",
    "model.heads=2",
    "model.dropout=0.0",
    "train.steps=2",
    "train.batch_size=4",
    "train.warmup_steps=1",
    "train.checkpoint_every=5",
    "train.log_every=1",
]


def image_folder(root: Path) -> Path:
    """train/ (4 per class) and val/ (2 per class) of two classes of 32x32 flat-coloured squares."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        for name in ("dark", "light"):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                base = 40 if name == "dark" else 200
                pixels = np.full((32, 32, 3), base, np.uint8)
                pixels[8:24, 8:24] = rng.integers(0, 255, 3)
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    return root


def fsq_tokenizer(folder: Path, levels: tuple[int, ...]) -> Path:
    """A random FSQ tokenizer (pixel decoder included) on 32 px images: 8x8 ids, prod(levels) codes."""
    torch.manual_seed(0)
    conv = ConvNetConfig(
        channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, z_channels=16, attn_resolutions=()
    )
    return FSQTokenizer(FSQConfig(image_size=32, levels=levels, conv=conv)).eval().save_pretrained(folder)


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A masked run trained 2 steps on the tokens of a 12-code tokenizer, and a 16-code tokenizer beside it."""
    root = tmp_path_factory.mktemp("masked")
    images = image_folder(root / "images")
    tok12 = fsq_tokenizer(root / "tok12", (4, 3))
    tok16 = fsq_tokenizer(root / "tok16", (4, 4))
    tokens12 = tokenize_dataset(tok12, str(images), "train", root / "t12", progress=False)
    tokens16 = tokenize_dataset(tok16, str(images), "val", root / "t16", progress=False)
    args = ["train", "nar", "--tokens", str(tokens12), "--out", str(root / "run"), "--no-progress"]
    assert main([*args, *[a for key in TINY_NAR for a in ("--set", key)]]) == 0
    return {
        "root": root,
        "images": images,
        "run": root / "run",
        "tok16": tok16,
        "tokens12": tokens12,
        "tokens16": tokens16,
    }


def one_line_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the CLI in-process and return its error line (asserting exit code 2 and a single line)."""
    try:
        code = main(args)
    except SystemExit as error:  # argparse's own errors (bad choice)
        code = error.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("semtok: error: "), err
    return lines[0]


def test_the_run_is_a_masked_model(masked_run):
    assert (masked_run["run"] / "nar" / "model.safetensors").is_file()
    assert checks.generator_kind(masked_run["run"]) == "nar"
    assert checks.generator_folder(masked_run["run"]) == masked_run["run"] / "nar"
    sampler = Sampler(masked_run["run"])
    assert sampler.family == "masked" and sampler.num_classes == 2 and sampler.tokenizer.num_codes == 12


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--steps", "0"], "--steps 0: expected a number of masked decoding steps >= 1"),
        (["--schedule", "nope"], "argument --schedule: invalid choice: 'nope' (choose from"),
        (["--choice-temperature", "-0.5"], "--choice-temperature -0.5: expected a float >= 0"),
        (["--no-cache"], "--no-cache applies to AR models"),
        (["--class", "99"], "--class 99: this model has classes 0..1"),
        (["--tokenizer", "{tok16}"], "(16 codes, grid [8, 8]) does not match the masked model (12 codes"),
    ],
)
def test_sample_bad_input_is_one_line(masked_run, tmp_path, capsys, extra, message):
    extra = [a.format(tok16=masked_run["tok16"]) for a in extra]
    out = tmp_path / "s.png"
    line = one_line_error(
        ["sample", str(masked_run["run"]), *extra, "--out", str(out), "--no-progress"], capsys
    )
    assert message in line
    assert not out.exists()
    if "schedule" in message:
        assert all(name in line for name in MASK_SCHEDULE_NAMES)


def test_train_nar_refuses_val_tokens_of_another_tokenizer(masked_run, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "train",
        "nar",
        "--tokens",
        str(masked_run["tokens12"]),
        "--val-tokens",
        str(masked_run["tokens16"]),
    ]
    line = one_line_error([*args, "--out", str(out), "--no-progress"], capsys)
    assert "--val-tokens" in line and "16 codes" in line and "expected 12 codes" in line
    assert not out.exists()


@pytest.mark.slow  # three CLI sample runs
def test_sample_records_masked_decoding_and_repeats_with_the_seed(masked_run, tmp_path, capsys):
    def sample(name: str, seed: int) -> Path:
        out = tmp_path / name
        args = ["sample", str(masked_run["run"]), "--n", "2", "--steps", "3", "--schedule", "linear"]
        args += ["--choice-temperature", "2", "--cfg-ramp", "--top-k", "0", "--seed", str(seed)]
        assert main([*args, "--out", str(out), "--no-progress"]) == 0, capsys.readouterr().err
        return out

    first, again, other = sample("a.png", 1), sample("b.png", 1), sample("c.png", 2)
    provenance = read_provenance(first)
    assert provenance["decoding"] == "masked" and provenance["generator_kind"] == "nar"
    assert provenance["model"] == str((masked_run["run"] / "nar").resolve())
    assert provenance["classes"] == [0, 0] and provenance["seed"] == 1
    settings = provenance["sampling"]
    assert settings["steps"] == 3 and settings["schedule"] == "linear"
    assert settings["choice_temperature"] == 2.0 and settings["cfg_ramp"] is True and settings["top_k"] == 0
    assert first.read_bytes() == again.read_bytes()
    assert first.read_bytes() != other.read_bytes()

    sampler = Sampler(masked_run["run"])
    config = SamplingConfig(**settings)
    _, ids = sampler.sample(torch.tensor([0, 1, 1]), config, seed=1)
    _, ids_again = sampler.sample(torch.tensor([0, 1, 1]), config, seed=1)
    assert ids.shape == (3, 8, 8) and torch.equal(ids, ids_again)
    assert int(ids.min()) >= 0 and int(ids.max()) < 12


def test_python_sample_takes_the_masked_settings(masked_run):
    images = semtok.sample(masked_run["run"], [0, 1], seed=3, steps=2, schedule="arccos", cfg_ramp=True)
    assert images.shape == (2, 3, 32, 32) and images.min() >= -1 and images.max() <= 1
    sampler = semtok.load_sampler(masked_run["run"])
    same = semtok.sample(sampler, [0, 1], seed=3, steps=2, schedule="arccos", cfg_ramp=True)
    assert torch.equal(images, same)
    with pytest.raises(SemtokError, match="sampling steps: expected >= 1"):
        semtok.sample(sampler, [0], steps=0)


def test_an_ar_model_refuses_the_masked_settings(masked_run, tmp_path):
    config = ARConfig(depth=1, width=32, heads=2, vocab_size=12, seq_len=64, grid=(8, 8), num_classes=2)
    ar = ARTransformer(config)
    ar.info = {"tokenizer": str(masked_run["root"] / "tok12"), "tokens": "", "data": {}, "class_names": []}
    ar.save_pretrained(tmp_path / "ar")
    with pytest.raises(SemtokError, match="steps=4 applies to masked models"):
        semtok.sample(tmp_path / "ar", [0], steps=4)
    with pytest.raises(SemtokError, match="cfg_ramp=True applies to masked models"):
        semtok.evaluate(tmp_path / "ar", str(masked_run["images"]), cfg_ramp=True)


def test_cli_sampling_defaults_are_the_sampling_configs():
    parser = argparse.ArgumentParser()
    checks.add_sampling_options(parser)
    args = parser.parse_args([])
    assert SamplingConfig(**checks.sampling_fields(args)) == SamplingConfig()
    assert checks.MASK_SCHEDULES == MASK_SCHEDULE_NAMES
    assert set(checks.MASKED_ONLY) <= {f.name for f in dataclasses.fields(SamplingConfig)}


@pytest.mark.slow  # Inception features and the FID's sqrtm of 2048 x 2048 covariances
def test_evaluate_generation_on_the_masked_run(masked_run, monkeypatch, capsys):
    monkeypatch.setenv("SEMTOK_CACHE", str(masked_run["root"] / "cache"))
    run = masked_run["run"]
    args = ["evaluate", str(run), "--generation", "--data", str(masked_run["images"]), "--steps", "2"]
    assert main([*args, "--schedule", "arccos", "--no-progress"]) == 0, capsys.readouterr().err
    results = json.loads((run / "eval_generation_val_seed0.json").read_text())  # beside nar/, the default
    assert results["generator_kind"] == "nar" and results["samples"] == 4
    assert results["sampling"]["steps"] == 2 and results["sampling"]["schedule"] == "arccos"
    assert results["gfid"] > 0 and 0 <= results["precision"] <= 1 and 0 <= results["recall"] <= 1
    line = one_line_error(["evaluate", str(run), "--data", str(masked_run["images"])], capsys)
    assert "holds a masked model: add --generation" in line
