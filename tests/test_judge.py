"""The judge classifier: training (exact resume), its folder format, accuracy on separable data, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from semtok.cli import main
from semtok.config import load_config
from semtok.errors import SemtokError
from semtok.evaluation.judge import Judge, JudgeConfig, class_accuracy
from semtok.training import train
from semtok.training.checkpoint import latest_checkpoint
from semtok.training.judge import JudgeRunConfig

CLASSES = ("flat", "horizontal", "vertical")  # sorted: the folder labels are in this order
TINY = [
    "model.image_size=16",
    "model.num_classes=3",
    "model.width=8",
    "model.stages=2",
    "model.stem_stride=1",
    "train.batch_size=12",
    "train.lr=1e-2",
    "train.warmup_steps=2",
    "train.checkpoint_every=50",
    "train.log_every=1",
    "data.augment=none",
]


def stripes(label: int, rng: np.random.Generator, size: int = 16) -> np.ndarray:
    """uint8 [size, size, 3]: a flat colour (0), horizontal stripes (1) or vertical stripes (2); random colours,
    phase and noise."""
    fg, bg = rng.integers(150, 256, 3), rng.integers(0, 100, 3)  # bright on dark, random hues
    yy, xx = np.mgrid[:size, :size]
    phase = rng.integers(0, 4)
    mask = {0: np.zeros((size, size), bool), 1: (yy + phase) % 4 < 2, 2: (xx + phase) % 4 < 2}[label]
    pixels = np.where(mask[..., None], fg, bg).astype(float) + rng.normal(0, 12, (size, size, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8)


@pytest.fixture
def stripes_folder(tmp_path: Path) -> Path:
    """train/ (12 per class) and val/ (4 per class) of three separable 16x16 classes."""
    rng = np.random.default_rng(0)
    root = tmp_path / "stripes"
    for split, count in (("train", 12), ("val", 4)):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(stripes(label, rng)).save(folder / f"{i}.png")
    return root


def run(overrides: list[str], out: Path, **kwargs) -> dict:
    return train(
        "judge", load_config(JudgeRunConfig, "judge-mnist", overrides), out, progress=False, **kwargs
    )


@pytest.mark.slow
def test_trained_judge_classifies_separable_data(stripes_folder: Path, tmp_path: Path):
    out = tmp_path / "run"
    summary = run([*TINY, "train.steps=40", f"data.dataset={stripes_folder}"], out)
    assert summary["val_top1"] == 1.0 and summary["val_images"] == 12 and summary["steps"] == 40
    for name in ("config.yaml", "summary.json", "log.jsonl", "judge/config.json", "judge/model.safetensors"):
        assert (out / name).exists(), name
    assert json.loads((out / "summary.json").read_text())["val_top1"] == 1.0
    judge = Judge.from_pretrained(out)  # a run folder works as well as its judge/ folder
    assert judge.config.class_names == list(CLASSES) and judge.info["val_top1"] == 1.0
    rng = np.random.default_rng(123)  # new images, never seen in training
    labels = torch.arange(30) % 3
    images = torch.from_numpy(np.stack([stripes(int(y), rng) for y in labels])).permute(0, 3, 1, 2)
    assert class_accuracy(judge, images, labels) == 1.0  # uint8
    as_float = images.float() / 127.5 - 1
    assert class_accuracy(judge, as_float, labels) == 1.0  # [-1, 1] floats
    assert class_accuracy(judge, as_float, (labels + 1) % 3) == 0.0  # wrong labels: never right
    big = torch.nn.functional.interpolate(as_float, size=32, mode="nearest")
    assert class_accuracy(judge, big, labels) == 1.0  # other sizes are resized to the judge's
    with pytest.raises(SemtokError, match="one label each"):
        class_accuracy(judge, as_float, labels[:5])
    with pytest.raises(SemtokError, match=r"labels must be in \[0, 3\)"):
        class_accuracy(judge, as_float, labels + 3)


def test_save_and_load_are_identical(tmp_path: Path):
    torch.manual_seed(0)
    judge = Judge(JudgeConfig(image_size=16, num_classes=4, width=8, stages=2, class_names=list("abcd")))
    judge.info = {"val_top1": 0.5}
    judge.save_pretrained(tmp_path / "judge")
    loaded = Judge.from_pretrained(tmp_path / "judge")
    assert loaded.config == judge.config and loaded.info == judge.info and not loaded.training
    for key, value in judge.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    images = torch.rand(5, 3, 16, 16) * 2 - 1
    logits = loaded.classify(images)
    assert logits.shape == (5, 4) and logits.dtype == torch.float32
    assert torch.equal(logits, judge.classify(images))
    # batch-independent (GroupNorm, no batch statistics): equal up to the kernels' float round-off
    torch.testing.assert_close(loaded.classify(images, batch_size=2), logits, atol=1e-5, rtol=1e-5)


def test_resume_is_exact(stripes_folder: Path, tmp_path: Path):
    sets = [
        *TINY,
        "train.steps=4",
        "data.augment=crop",
        "data.crop_scale=[0.7, 1.0]",
        f"data.dataset={stripes_folder}",
    ]
    run(sets, tmp_path / "straight")
    summary = run(sets, tmp_path / "split", stop_at=2)
    assert summary == {"kind": "judge", "stopped_at_step": 2, "steps": 4, "judge": None}
    assert latest_checkpoint(tmp_path / "split").name == "step_00000002"
    assert not (tmp_path / "split" / "judge").exists()
    run(sets, tmp_path / "split", resume=True)
    straight = load_file(str(tmp_path / "straight" / "judge" / "model.safetensors"))
    split = load_file(str(tmp_path / "split" / "judge" / "model.safetensors"))
    assert straight.keys() == split.keys()
    for key in straight:
        assert torch.equal(straight[key], split[key]), key
    halfway = load_file(str(tmp_path / "split" / "checkpoints" / "step_00000002" / "model.safetensors"))
    assert not torch.equal(halfway["head.weight"], straight["head.weight"])  # steps 3 and 4 changed it
    with pytest.raises(SemtokError, match="resume=True"):
        run(sets, tmp_path / "straight")


def test_bad_judge_folders(tmp_path: Path):
    with pytest.raises(SemtokError, match="does not exist"):
        Judge.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SemtokError, match="no config.json"):
        Judge.from_pretrained(tmp_path / "empty")
    tokenizer_like = tmp_path / "tok"
    tokenizer_like.mkdir()
    (tokenizer_like / "config.json").write_text(json.dumps({"kind": "vqkd", "config": {}}))
    with pytest.raises(SemtokError, match="'vqkd'"):
        Judge.from_pretrained(tokenizer_like)
    (tokenizer_like / "config.json").write_text("{not json")
    with pytest.raises(SemtokError, match="not valid JSON"):
        Judge.from_pretrained(tokenizer_like)
    judge = Judge(JudgeConfig(image_size=16, num_classes=3, width=8, stages=2))
    folder = judge.save_pretrained(tmp_path / "judge")
    meta = json.loads((folder / "config.json").read_text())
    meta["config"]["width"] = 16  # weights no longer fit the config
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(SemtokError, match="does not match"):
        Judge.from_pretrained(folder)
    meta["config"]["widht"] = 8
    (folder / "config.json").write_text(json.dumps(meta))
    with pytest.raises(SemtokError, match="model.widht"):
        Judge.from_pretrained(folder)
    judge.save_pretrained(folder)
    (folder / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(SemtokError, match="safetensors"):
        Judge.from_pretrained(folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(SemtokError, match="no model.safetensors"):
        Judge.from_pretrained(folder)


def test_config_and_data_errors(stripes_folder: Path, tmp_path: Path):
    with pytest.raises(SemtokError, match="model.num_classes"):
        run([*TINY, "model.num_classes=5", f"data.dataset={stripes_folder}"], tmp_path / "a")
    with pytest.raises(SemtokError, match="model.width"):
        JudgeConfig(width=0)
    with pytest.raises(SemtokError, match="too small"):
        JudgeConfig(image_size=4, stages=3, stem_stride=2)
    unlabelled = tmp_path / "flat"
    unlabelled.mkdir()
    for i in range(12):
        Image.fromarray(np.full((16, 16, 3), 20 * i, np.uint8)).save(unlabelled / f"{i}.png")
    with pytest.raises(SemtokError, match="labelled"):
        run([*TINY, f"data.dataset={unlabelled}"], tmp_path / "b")
    assert load_config(JudgeRunConfig, "judge-mnist").data.augment == "crop"  # digits: crops, never flips


def test_cli_train_judge(stripes_folder: Path, tmp_path: Path, capsys):
    sets = [arg for item in [*TINY, "train.steps=3"] for arg in ("--set", item)]
    out = str(tmp_path / "run")
    base = ["train", "judge", *sets, "--data", str(stripes_folder), "--no-progress"]
    assert main([*base, "--out", out, "--stop-at", "2"]) == 0
    assert "continue with --resume" in capsys.readouterr().out
    assert main(["train", "vqkd", "--out", out, "--resume", "--no-progress"]) == 2  # a judge run, not vqkd
    assert "'judge' run, not a 'vqkd' one" in capsys.readouterr().err
    assert main(["train", "judge", "--out", out, "--resume", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "val top-1" in printed and (tmp_path / "run" / "judge" / "model.safetensors").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--teacher", "effnet-lite0"], "not `train judge`"),
        (["--set", "model.widht=3"], "'model.widht' is unknown"),
        (["--set", "data.augment=rotate"], "data.augment"),
        (["--stop-at", "0"], "--stop-at"),
        (["--data", "{tmp}/no-such-dir"], "no-such-dir"),
    ],
)
def test_cli_errors_are_one_line(tmp_path: Path, capsys, args, message):
    argv = [
        "train",
        "judge",
        "--out",
        str(tmp_path / "r"),
        "--no-progress",
        *[a.format(tmp=tmp_path) for a in args],
    ]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("semtok: error:")


def test_cli_bad_flag_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "judge", "--out", "x", "--bogus"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unrecognized arguments: --bogus" in err[0]


def test_crop_augmentation_never_flips():
    """augment 'crop' (the judge's, for digits): the random resized crop of crop_flip without its flip."""
    from semtok.data.transforms import build_transform, item_generator

    image = torch.zeros(3, 16, 16, dtype=torch.uint8)
    image[:, :, :8] = 255  # bright left half: a flip moves it to the right
    crop, crop_flip = build_transform("crop", 16, (1.0, 1.0)), build_transform("crop_flip", 16, (1.0, 1.0))
    left = [crop(image, item_generator(0, 0, i))[:, :, :8].mean() for i in range(20)]
    flipped = [crop_flip(image, item_generator(0, 0, i))[:, :, :8].mean() < 0 for i in range(20)]
    assert all(value > 0.9 for value in left) and 3 <= sum(flipped) <= 17
    assert crop.is_random and not crop.hflip
