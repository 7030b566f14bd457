"""Image folders for every verb: ``--labels auto|folders|none`` and ``--split train|val|all`` (issue 13 section 2)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semtok.cli import main
from semtok.data import build_dataset
from semtok.data.config import DataConfig
from semtok.data.folder_scan import TopLevelImagesWarning, scan_image_folder
from semtok.data.token_file import read_token_file
from semtok.errors import SemtokError
from semtok.tokenizers import ConvNetConfig, FSQConfig, FSQTokenizer


def _png(path: Path, seed: int, size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """The user's folder: 10 images at the top level and 3 in one subfolder (13 files)."""
    root = tmp_path / "photos"
    for i in range(10):
        _png(root / f"top{i}.png", i)
    for i in range(3):
        _png(root / "holiday" / f"h{i}.png", 100 + i)
    return root


@pytest.fixture
def tok(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    conv = ConvNetConfig(channels=8, channel_mult=(1, 2), num_res_blocks=1, z_channels=8, attn_resolutions=())
    return (
        FSQTokenizer(FSQConfig(image_size=16, levels=(4, 3), conv=conv))
        .eval()
        .save_pretrained(tmp_path / "tok")
    )


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("semtok: error: "), err
    return err[0]


def test_users_folder_tokenize_reads_every_file(mixed, tok, tmp_path, capsys):
    """The bug: 3 of 13 tokenized. `--labels none` reads all 13 and the default split is every image."""
    out = tmp_path / "t"
    code = main(
        ["tokenize", str(tok), "--data", str(mixed), "--labels", "none", "--out", str(out), "--no-progress"]
    )
    assert code == 0
    ids, labels, manifest = read_token_file(f"{out}.json")
    assert ids.shape[0] == 13 and (labels == -1).all()
    assert manifest["data"]["split"] == "all" and manifest["data"]["labels"] == "none"
    assert manifest["data"]["images_per_view"] == 13


def test_users_folder_auto_warns_with_the_flag_and_keeps_every_labelled_image(mixed, tok, tmp_path):
    out = tmp_path / "t"
    with pytest.warns(
        TopLevelImagesWarning, match=r"ignored 10 image file\(s\) at its top level.*--labels none"
    ):
        assert main(["tokenize", str(tok), "--data", str(mixed), "--out", str(out), "--no-progress"]) == 0
    ids, labels, manifest = read_token_file(f"{out}.json")
    assert ids.shape[0] == 3 and (labels == 0).all()  # split all: no val tenth taken away
    assert manifest["data"]["split"] == "all" and manifest["class_names"] == ["holiday"]


def test_labels_none_reads_every_image_at_any_depth(tmp_path):
    root = tmp_path / "d"
    for i, rel in enumerate(["a.png", "x/b.png", "x/y/c.png", "z/d.png", ".hidden/e.png", "x/.f.png"]):
        _png(root / rel, i)
    dataset = build_dataset(root, "all", 16, labels="none")
    names = [Path(path).relative_to(root.resolve()).as_posix() for path, _ in dataset.samples]
    assert names == ["a.png", "x/b.png", "x/y/c.png", "z/d.png"] and dataset.num_classes == 0
    assert {label for _, label in dataset.samples} == {-1}
    train, val = (
        build_dataset(root, "train", 16, labels="none"),
        build_dataset(root, "val", 16, labels="none"),
    )
    assert sorted(train.samples + val.samples) == sorted(dataset.samples) and len(val) == 1


def test_labels_folders_on_a_flat_folder_is_one_line(tmp_path, tok, capsys):
    flat = tmp_path / "flat"
    for i in range(4):
        _png(flat / f"{i}.png", i)
    with pytest.raises(SemtokError, match=r"--labels folders.*none of its subfolders"):
        build_dataset(flat, "all", 16, labels="folders")
    assert (
        main(["tokenize", str(tok), "--data", str(flat), "--labels", "folders", "--out", str(tmp_path / "t")])
        == 2
    )
    line = _one_line_error(capsys)
    assert "--labels folders" in line and str(flat.resolve()) in line
    assert len(build_dataset(flat, "all", 16, labels="auto")) == 4  # auto: the flat folder, unlabelled


def test_split_all_on_each_layout(tmp_path, image_folder):
    # flat: no 90/10 split
    flat = tmp_path / "flat"
    for i in range(20):
        _png(flat / f"{i:02d}.png", i)
    assert len(build_dataset(flat, "all", 16)) == 20
    assert len(build_dataset(flat, "train", 16)) + len(build_dataset(flat, "val", 16)) == 20
    # labelled flat-split folder: every image, every class
    labelled = tmp_path / "labelled"
    for c in ("a", "b"):
        for i in range(5):
            _png(labelled / c / f"{i}.png", i)
    everything = build_dataset(labelled, "all", 16)
    assert len(everything) == 10 and everything.class_names == ["a", "b"]
    # train/ + val/: train then val, val read with the train class list
    train, val = build_dataset(image_folder, "train", 32), build_dataset(image_folder, "val", 32)
    both = build_dataset(image_folder, "all", 32)
    assert both.samples == train.samples + val.samples and both.class_names == train.class_names
    assert len(both) == 26 and both.num_classes == 2
    unlabelled = build_dataset(image_folder, "all", 32, labels="none")
    assert len(unlabelled) == 26 and unlabelled.num_classes == 0
    # mnist5k: train then val
    mnist = build_dataset("mnist5k", "all", 32)
    assert len(mnist) == 5000
    assert torch.equal(
        mnist.labels, torch.cat([build_dataset("mnist5k", s, 32).labels for s in ("train", "val")])
    )
    with pytest.raises(SemtokError, match="labels 'none'.*mnist5k is labelled"):
        build_dataset("mnist5k", "all", 32, labels="none")
    with pytest.raises(SemtokError, match="split: expected 'train', 'val' or 'all'"):
        build_dataset(flat, "test", 16)
    with pytest.raises(SemtokError, match="labels: expected 'auto', 'folders' or 'none'"):
        build_dataset(flat, "all", 16, labels="yes")


def test_split_all_augments_when_asked(tmp_path):
    flat = tmp_path / "flat"
    for i in range(6):
        _png(flat / f"{i}.png", i, size=24)
    plain = build_dataset(flat, "all", 16)
    augmented = build_dataset(flat, "all", 16, augment="crop_flip", seed=1)
    assert not plain.is_random and augmented.is_random
    assert not build_dataset(flat, "val", 16, augment="crop_flip").is_random  # val: never augmented


def test_captioned_all_keeps_captions_paired(tmp_path):
    from semtok.data.captioned_mnist import CaptionedMNIST

    train, val, both = (CaptionedMNIST(split, 16) for split in ("train", "val", "all"))
    assert len(both) == len(train) + len(val)
    for index in (0, 17, len(train) - 1):
        assert both.captions_of(index) == train.captions_of(index)
        assert torch.equal(both[index][0], train[index][0])
    for index in (0, 33, len(val) - 1):
        assert both.captions_of(len(train) + index) == val.captions_of(index)
        assert torch.equal(both[len(train) + index][0], val[index][0])
    # COCO: train2017 (every caption) then val2017 (the lowest-id caption)
    root = tmp_path / "coco"
    for split, names in (("train2017", ["a.png", "b.png"]), ("val2017", ["v.png"])):
        for i, name in enumerate(names):
            _png(root / split / name, i)
        captions = [(10 + i, name, f"{split} {name} {k}") for i, name in enumerate(names) for k in range(2)]
        ids = {name: 100 + i for i, name in enumerate(names)}
        document = {
            "images": [{"id": ids[n], "file_name": n, "width": 16, "height": 16} for n in names],
            "annotations": [
                {"image_id": ids[n], "id": a * 10 + k, "caption": c} for k, (a, n, c) in enumerate(captions)
            ],
        }
        (root / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "annotations" / f"captions_{split}.json").write_text(json.dumps(document))
    coco = build_dataset(root, "all", 16)
    assert [Path(p).name for p, _ in coco.samples] == ["a.png", "b.png", "v.png"]
    assert coco.captions_of(0) == ["train2017 a.png 0", "train2017 a.png 1"]
    assert coco.captions_of(2) == ["val2017 v.png 0"]
    with pytest.raises(SemtokError, match="labels 'folders'.*captioned folder"):
        build_dataset(root, "all", 16, labels="folders")


def test_probe_with_labels_none_is_one_line(tok, mixed, capsys):
    assert main(["probe", str(tok), "--data", str(mixed), "--labels", "none"]) == 2
    assert "--labels none: the linear probe needs labels" in _one_line_error(capsys)


def test_evaluate_and_reconstruct_take_labels_and_split(tok, mixed, tmp_path):
    out = tmp_path / "e.json"
    args = ["evaluate", str(tok), "--data", str(mixed), "--labels", "none", "--split", "all", "--no-fid"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    result = json.loads(out.read_text())
    assert result["images"] == 13 and result["split"] == "all" and result["labels"] == "none"
    grid = tmp_path / "grid.png"
    assert (
        main(
            [
                "reconstruct",
                str(tok),
                "--data",
                str(mixed),
                "--labels",
                "none",
                "--n",
                "20",
                "--out",
                str(grid),
            ]
        )
        == 0
    )
    # --split val of 13 unlabelled images: 1 (10 %) -> a grid of one original above its reconstruction
    assert Image.open(grid).size[1] >= 2 * 16


def test_data_labels_config_key_and_train_flag(tmp_path, mixed, capsys):
    from semtok.cli import build_parser
    from semtok.cli.train import _overrides
    from semtok.config import load_config
    from semtok.training.registry import STAGES, config_class

    for stage in ("vqkd", "decoder", "judge"):
        argv = ["train", stage, "--data", str(mixed), "--data-labels", "none", "--out", str(tmp_path / stage)]
        args = build_parser().parse_args(argv)
        config = load_config(
            config_class(stage), STAGES[stage].default_config, _overrides(args, STAGES[stage])
        )
        assert config.data.labels == "none" and config.data.dataset == str(mixed)
    with pytest.raises(SemtokError, match="'data.labels': expected auto, folders or none"):
        DataConfig(labels="maybe")
    assert main(["train", "vqkd", "--set", "data.labels=maybe", "--out", str(tmp_path / "bad")]) == 2
    assert "data.labels" in _one_line_error(capsys)


def test_scan_keeps_sorted_relative_order(tmp_path):
    root = tmp_path / "order"
    for rel in ["b/z.png", "b/a.png", "a/c/d.png", "a/b.png", "a.png", "B/x.png"]:
        _png(root / rel, 1)
    names = [
        Path(p).relative_to(root.resolve()).as_posix()
        for p, _ in scan_image_folder(root, labelled=False).samples
    ]
    assert names == sorted(names) and len(names) == 6


def test_header_check_cache_hits_and_notices_changes(tmp_path, monkeypatch):
    from semtok.data import folder_scan, scan_cache

    monkeypatch.setenv("SEMTOK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(scan_cache, "CACHE_MIN_FILES", 1)
    root = tmp_path / "big"
    for i in range(6):
        _png(root / "c" / f"{i}.png", i)
    (root / "c" / "bad.png").write_bytes(b"not an image at all")
    calls = []
    real = folder_scan._header_error
    monkeypatch.setattr(folder_scan, "_header_error", lambda path: calls.append(path) or real(path))
    with pytest.warns(UserWarning, match="bad.png"):
        first = scan_image_folder(root)
    assert len(calls) == 7 and len(first.samples) == 6 and len(first.skipped_files) == 1
    assert len(list((tmp_path / "cache" / "scans").glob("*.json"))) == 1
    calls.clear()
    with pytest.warns(UserWarning, match="bad.png"):  # a hit: no file opened, the same result
        again = scan_image_folder(root)
    assert calls == [] and again.samples == first.samples and again.skipped_files == first.skipped_files
    _png(root / "c" / "bad.png", 9)  # repaired: size and mtime change -> checked again
    second = scan_image_folder(root)
    assert len(calls) == 7 and len(second.samples) == 7 and second.skipped_files == []


def test_tokenize_views_on_all_with_augment(mixed, tok, tmp_path, capsys):
    out = tmp_path / "views"
    args = [
        "tokenize",
        str(tok),
        "--data",
        str(mixed),
        "--labels",
        "none",
        "--augment",
        "flip",
        "--views",
        "2",
    ]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    ids, _, manifest = read_token_file(f"{out}.json")
    assert ids.shape[0] == 26 and manifest["data"]["views"] == 2 and manifest["data"]["split"] == "all"
    assert main([*args, "--split", "val", "--out", str(tmp_path / "v2")]) == 2
    assert "--split train or all" in _one_line_error(capsys)
