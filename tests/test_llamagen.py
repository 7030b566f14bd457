"""LlamaGen's code folders (extract_codes_c2i.py layout): written from token files, read as token files, trained on."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import pattern_tokens
from semtok.cli import main
from semtok.data.llamagen import read_llamagen, write_llamagen
from semtok.data.token_file import TokenDataset, read_manifest, read_token_file, write_token_file
from semtok.errors import SemtokError


def two_view_tokens(path: Path) -> Path:
    """A token file of 5 images x 2 views (view-major rows), grid 2 x 3, 40 codes, 3 classes, image size 32."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 40, (10, 2, 3), generator=generator)
    labels = torch.tensor([0, 2, 1, 1, 0] * 2)
    meta = {
        "tokenizer": {"path": "/tok", "kind": "vqkd", "config": {"image_size": 32}},
        "data": {"dataset": "x", "image_size": 32, "views": 2, "images_per_view": 5},
        "num_classes": 3,
        "class_names": ["a", "b", "c"],
    }
    return write_token_file(path, ids, labels, 40, meta)


def test_round_trip_token_file_to_llamagen_and_back(tmp_path: Path):
    manifest = two_view_tokens(tmp_path / "tok")
    ids, labels, ours = read_token_file(manifest)
    written = write_llamagen(manifest, tmp_path / "lg")
    assert written == tmp_path / "lg" / "semtok.json"
    codes_dir, labels_dir = tmp_path / "lg" / "imagenet32_codes", tmp_path / "lg" / "imagenet32_labels"
    assert sorted(p.name for p in codes_dir.iterdir()) == [f"{i}.npy" for i in range(5)]
    for i in range(5):  # LlamaGen's shapes: codes [1, views, h*w] int64, labels [1] int64; views of image i
        codes = np.load(codes_dir / f"{i}.npy", allow_pickle=False)
        label = np.load(labels_dir / f"{i}.npy", allow_pickle=False)
        assert codes.shape == (1, 2, 6) and codes.dtype == np.int64
        assert label.shape == (1,) and label.dtype == np.int64 and label[0] == labels[i]
        assert np.array_equal(codes[0, 0], ids[i].reshape(-1)) and np.array_equal(
            codes[0, 1], ids[5 + i].reshape(-1)
        )

    back_ids, back_labels, back = read_token_file(tmp_path / "lg")
    assert np.array_equal(back_ids, ids) and back_ids.dtype == ids.dtype
    assert np.array_equal(back_labels, labels)
    for key in ("num_images", "grid", "num_codes", "dtype", "num_classes", "class_names", "tokenizer"):
        assert back[key] == ours[key], key
    assert back["source"]["grid_from"] == "semtok.json" and back["data"]["views"] == 2
    assert read_manifest(tmp_path / "lg")["grid"] == [2, 3]
    dataset = TokenDataset(tmp_path / "lg")
    assert len(dataset) == 10 and torch.equal(
        dataset[7][0], torch.from_numpy(ids[7].reshape(-1).astype(np.int64))
    )


def write_foreign(root: Path, count: int, length: int, views: int = 10) -> np.ndarray:
    """A folder as LlamaGen itself writes it (no semtok.json): [1, views, length] codes, [1] labels."""
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 100, (count, views, length))
    for name in ("imagenet256_codes", "imagenet256_labels"):
        (root / name).mkdir(parents=True)
    for i in range(count):
        np.save(root / "imagenet256_codes" / f"{i}.npy", codes[i][None])
        np.save(root / "imagenet256_labels" / f"{i}.npy", np.array([i % 4]))
    return codes


def test_a_folder_llamagen_wrote(tmp_path: Path):
    codes = write_foreign(tmp_path / "lg", 3, 16)
    with pytest.warns(UserWarning, match="no semtok.json: num_codes"):
        ids, labels, manifest = read_llamagen(tmp_path / "lg")
    assert ids.shape == (30, 4, 4) and manifest["grid"] == [4, 4]
    assert manifest["num_codes"] == int(codes.max()) + 1 and manifest["num_classes"] == 3
    assert np.array_equal(ids[3 * 7 + 2].reshape(-1), codes[2, 7])  # view 7 of image 2: row 7 * N + 2
    assert np.array_equal(labels, np.tile([0, 1, 2], 10))
    assert manifest["source"] == {
        "format": "llamagen",
        "path": str(tmp_path / "lg"),
        "grid_from": "square code length",
        "num_codes_from": "largest id + 1",
    }
    write_foreign(tmp_path / "odd", 2, 6)
    with pytest.raises(SemtokError, match="length 6 are not a square grid"):
        read_llamagen(tmp_path / "odd")
    with pytest.warns(UserWarning):
        assert read_llamagen(tmp_path / "odd", grid=(2, 3))[2]["grid"] == [2, 3]


def test_damaged_folders_are_one_error_line(tmp_path: Path):
    write_foreign(tmp_path / "gap", 3, 4, views=2)
    (tmp_path / "gap" / "imagenet256_codes" / "1.npy").unlink()
    with pytest.raises(SemtokError, match=r"1.npy is missing"):
        read_token_file(tmp_path / "gap")
    (tmp_path / "none").mkdir()
    with pytest.raises(SemtokError, match="expected one NAME_codes/ \\+ NAME_labels/ pair"):
        read_manifest(tmp_path / "none")
    write_foreign(tmp_path / "pickle", 2, 4, views=2)
    ran = tmp_path / "ran"

    class Boom:
        def __reduce__(self):
            return (Path.touch, (ran,))

    np.save(
        tmp_path / "pickle" / "imagenet256_codes" / "0.npy",
        np.array([Boom()], dtype=object),
        allow_pickle=True,
    )
    with pytest.raises(SemtokError, match="is not a readable .npy array") as error:
        read_token_file(tmp_path / "pickle")
    assert not ran.exists() and "\n" not in str(error.value)


@pytest.mark.slow  # (0.7 s alone, up to 6 s on 2 contended cores: two 2-step runs)
def test_train_ar_and_nar_on_a_llamagen_folder(tmp_path: Path, capsys):
    manifest, _ = pattern_tokens(tmp_path / "tokens", rows=16)
    write_llamagen(manifest, tmp_path / "lg")
    meta = json.loads((tmp_path / "lg" / "semtok.json").read_text())
    assert meta["codes_dir"] == "imagenet_codes" and meta["grid"] == [2, 4]  # (no image size recorded)
    tiny = ["model.depth=1", "model.width=16", "model.heads=2", "train.batch_size=4", "train.steps=2"]
    for stage in ("ar", "nar"):
        args = ["train", stage, "--tokens", str(tmp_path / "lg"), "--val-tokens", str(manifest)]
        args += ["--config", f"{stage}-mnist", "--out", str(tmp_path / stage), "--no-progress"]
        for override in tiny:
            args += ["--set", override]
        assert main(args) == 0, capsys.readouterr().err
        config = json.loads((tmp_path / stage / stage / "config.json").read_text())
        assert config["config"]["vocab_size"] == 16 and config["config"]["grid"] == [2, 4]
        assert config["config"]["num_classes"] == 2
        assert load_file(str(tmp_path / stage / stage / "model.safetensors"))


@pytest.mark.slow  # (1-2.5 s on 2 contended cores: two tokenize runs)
def test_tokenize_format_llamagen(tmp_path: Path, image_folder: Path, capsys):
    from semtok.tokenizers import ConvNetConfig, FSQConfig, FSQTokenizer

    torch.manual_seed(0)
    conv = ConvNetConfig(
        channels=8, channel_mult=(1, 2, 2), num_res_blocks=1, z_channels=8, attn_resolutions=()
    )
    FSQTokenizer(FSQConfig(image_size=32, levels=(4, 3), conv=conv)).eval().save_pretrained(tmp_path / "fsq")
    common = [
        "tokenize",
        str(tmp_path / "fsq"),
        "--data",
        str(image_folder),
        "--split",
        "train",
        "--no-progress",
    ]
    common += ["--augment", "flip", "--views", "2"]
    assert main([*common, "--out", str(tmp_path / "ours")]) == 0
    args = [*common, "--format", "llamagen", "--out", str(tmp_path / "lg")]
    assert main(args) == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "lg").iterdir()) == [
        "imagenet32_codes",
        "imagenet32_labels",
        "semtok.json",
    ]
    codes = np.load(tmp_path / "lg" / "imagenet32_codes" / "19.npy", allow_pickle=False)
    assert codes.shape == (1, 2, 64) and codes.dtype == np.int64
    ours, our_labels, _ = read_token_file(tmp_path / "ours.json")
    ids, labels, manifest = read_token_file(tmp_path / "lg")
    assert np.array_equal(ids, ours) and np.array_equal(labels, our_labels)  # the same seeded views
    assert np.array_equal(codes[0, 1], ours[20 + 19].reshape(-1))  # view 1 of image 19: row 1 * 20 + 19
    assert manifest["data"]["augment"] == "flip" and manifest["num_classes"] == 2
    assert main(args) == 2 and "already holds LlamaGen code folders" in capsys.readouterr().err


def test_format_llamagen_refuses_captions(tmp_path: Path):
    """A captioned token file staged by `tokenize --format llamagen` is refused and removed (captions would be lost)."""
    from semtok.cli.llamagen import publish, staging_name
    from semtok.data.token_captions import write_token_captions

    staged = Path(staging_name(str(tmp_path / "lg")))
    manifest, _ = pattern_tokens(staged, rows=4)
    meta = json.loads(manifest.read_text())
    meta["captions_file"] = write_token_captions(staged, [["a red 1"], ["a blue 2"], ["x"], ["y"]]).name
    manifest.write_text(json.dumps(meta))
    with pytest.raises(SemtokError, match="--format llamagen: the data has captions") as error:
        publish(manifest, str(tmp_path / "lg"), 1)
    assert "\n" not in str(error.value) and list((tmp_path / "lg").iterdir()) == []
