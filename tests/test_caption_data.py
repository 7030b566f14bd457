"""Caption data sets (a COCO root, a captions.jsonl folder, mnist5k-captioned) and captions carried into token files."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import pattern_tokens
from semtok.cli import main
from semtok.data import build_dataset, split_samples
from semtok.data.caption_files import CaptionMatchWarning, read_caption_jsonl, read_coco_captions
from semtok.data.captioned_folder import CaptionedImageFolder, jsonl_scan
from semtok.data.captioned_mnist import CaptionedMNIST
from semtok.data.token_captions import read_token_captions, write_token_captions
from semtok.data.token_file import read_token_file
from semtok.errors import SemtokError
from semtok.pipelines.tokenize import tokenize_dataset
from semtok.tokenizers import ConvNetConfig, FSQConfig, FSQTokenizer


def _png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def _coco_json(path: Path, images: list[str], annotations: list[tuple[int, str, str]]) -> None:
    """``annotations``: (annotation id, file name, caption)."""
    ids = {name: 100 + i for i, name in enumerate(images)}
    document = {
        "info": {},
        "images": [{"id": ids[name], "file_name": name, "width": 16, "height": 16} for name in images],
        "annotations": [
            {"image_id": ids[name], "id": ann_id, "caption": caption} for ann_id, name, caption in annotations
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


@pytest.fixture
def coco(tmp_path: Path) -> Path:
    """train2017: a, b, c (c has no caption; d is annotated but not on disk); val2017: v1 (two captions), v2, v3."""
    root = tmp_path / "coco"
    for i, name in enumerate(("a.png", "b.png", "c.png")):
        _png(root / "train2017" / name, i)
    for i, name in enumerate(("v1.png", "v2.png", "v3.png")):
        _png(root / "val2017" / name, 10 + i)
    train = [
        (5, "a.png", "a cat on a mat"),
        (2, "a.png", "  a small cat "),
        (3, "b.png", "a dog"),
        (7, "d.png", "x"),
    ]
    _coco_json(root / "annotations" / "captions_train2017.json", ["a.png", "b.png", "c.png", "d.png"], train)
    val = [(11, "v1.png", "second"), (10, "v1.png", "first"), (12, "v2.png", "only"), (13, "v3.png", "third")]
    _coco_json(root / "annotations" / "captions_val2017.json", ["v1.png", "v2.png", "v3.png"], val)
    return root


@pytest.fixture
def jsonl_folder(tmp_path: Path) -> Path:
    """20 captioned images under sub/ (x3 with two captions, x5 with a list), one more without any caption."""
    root = tmp_path / "jsonl"
    lines = []
    for i in range(20):
        _png(root / "sub" / f"x{i}.png", i)
        lines.append(json.dumps({"file": f"sub/x{i}.png", "caption": f"image {i}"}))
    lines += ["", json.dumps({"file": "sub/x3.png", "caption": "again three"})]
    lines.append(json.dumps({"file": "sub/x5.png", "captions": ["five a", "five b"]}))
    _png(root / "lonely.png", 99)
    (root / "captions.jsonl").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def fsq(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    conv = ConvNetConfig(
        channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, z_channels=16, attn_resolutions=()
    )
    return (
        FSQTokenizer(FSQConfig(image_size=32, levels=(4, 3), conv=conv))
        .eval()
        .save_pretrained(tmp_path / "fsq")
    )


def test_coco_parsing_orders_by_annotation_id(coco):
    captions = read_coco_captions(coco / "annotations" / "captions_train2017.json")
    assert captions == {"a.png": ["a small cat", "a cat on a mat"], "b.png": ["a dog"], "d.png": ["x"]}


def test_coco_train_warns_counts_and_skips(coco):
    with pytest.warns(CaptionMatchWarning) as record:
        train = build_dataset(coco, "train", 32)
    messages = [str(w.message) for w in record if issubclass(w.category, CaptionMatchWarning)]
    assert len(messages) == 2
    assert any("1 image(s) without any caption" in m and "c.png" in m for m in messages)
    assert any("1 caption(s) whose image does not exist" in m and "d.png" in m for m in messages)
    assert isinstance(train, CaptionedImageFolder) and len(train) == 2 and train.num_classes == 0
    assert train.caption_report == {"images_without_captions": 1, "captions_without_images": 1}
    assert [Path(p).name for p, _ in train.samples] == ["a.png", "b.png"]
    assert train.captions_of(0) == ["a small cat", "a cat on a mat"] and train.captions_of(-1) == ["a dog"]
    image, label = train[1]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and label == -1
    assert "3 captions from" in train.describe()


def test_coco_val_is_one_caption_per_image_lowest_id(coco):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CaptionMatchWarning)  # every val image is captioned: no warning
        val = build_dataset(coco, "val", 32)
    assert len(val) == 3 and val.caption_report == {
        "images_without_captions": 0,
        "captions_without_images": 0,
    }
    assert [val.captions_of(i) for i in range(3)] == [["first"], ["only"], ["third"]]


def test_jsonl_folder_captions_and_flat_split(jsonl_folder):
    captions = read_caption_jsonl(jsonl_folder / "captions.jsonl")
    assert captions["sub/x3.png"] == ["image 3", "again three"]
    assert captions["sub/x5.png"] == ["image 5", "five a", "five b"]
    with pytest.warns(CaptionMatchWarning, match="1 image.* without any caption.*lonely.png"):
        train = build_dataset(jsonl_folder, "train", 32)
    with pytest.warns(CaptionMatchWarning):
        val = build_dataset(jsonl_folder, "val", 32)
    assert len(train) == 18 and len(val) == 2 and train.labelled is False
    assert not {p for p, _ in train.samples} & {p for p, _ in val.samples}
    with pytest.warns(CaptionMatchWarning):
        scan = jsonl_scan(jsonl_folder).scan
    _, val_indices = split_samples(scan)  # the flat-folder split of build_dataset, over the captioned images
    assert [p for p, _ in val.samples] == [scan.samples[i][0] for i in val_indices]
    by_name = {Path(p).name: train.captions_of(i) for i, (p, _) in enumerate(train.samples)}
    by_name.update({Path(p).name: val.captions_of(i) for i, (p, _) in enumerate(val.samples)})
    assert by_name["x3.png"] == ["image 3", "again three"] and by_name["x0.png"] == ["image 0"]


def test_undecodable_image_brings_its_replacements_captions(coco):
    path = coco / "train2017" / "b.png"
    path.write_bytes(path.read_bytes()[:60])  # the header still parses, the pixels do not
    with pytest.warns(CaptionMatchWarning):
        train = build_dataset(coco, "train", 32)
    assert train.captions_of(1) == ["a dog"]
    with pytest.warns(UserWarning, match="b.png"):
        image, _ = train[1]  # replaced by the next readable image, a.png (wrapping around)
    assert torch.equal(image, train[0][0]) and train.captions_of(1) == train.captions_of(0)


def test_captioned_mnist_has_captions_of():
    val = CaptionedMNIST("val", 16)
    assert val.captions_of(4) == [val.captions[4]] and val.captions_of(-1) == [val.captions[-1]]


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json {", r"captions_train2017.json' is not valid JSON"),
        ("[1, 2]", r"captions_train2017.json': expected an object with 'images' and 'annotations' lists"),
        ('{"images": [{"id": 1}], "annotations": []}', r"images\[0\] lacks"),
        ('{"images": [], "annotations": [{"image_id": 1, "id": 2, "caption": "x"}]}', "names image_id 1"),
    ],
)
def test_bad_coco_file(coco, text, message):
    (coco / "annotations" / "captions_train2017.json").write_text(text)
    with pytest.raises(SemtokError, match=message) as error:
        build_dataset(coco, "train", 32)
    assert "\n" not in str(error.value)


def test_coco_val_annotations_missing(coco):
    (coco / "annotations" / "captions_val2017.json").unlink()
    with pytest.raises(SemtokError, match=r"captions_val2017.json': no such file"):
        build_dataset(coco, "val", 32)


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"file": "a.png", "caption": "ok"}', "", "{oops"], r"captions.jsonl' line 3: not JSON"),
        (['{"file": "a.png", "text": "no caption key"}'], 'line 1: expected a "caption"'),
        (['{"caption": "no file"}'], 'line 1: expected an object with "file"'),
        (['{"file": "a.png", "captions": ["ok", ""]}'], "line 1: every caption must be a non-empty string"),
    ],
)
def test_bad_jsonl_lines(tmp_path, lines, message):
    path = tmp_path / "captions.jsonl"
    path.write_text("\n".join(lines))
    with pytest.raises(SemtokError, match=message):
        read_caption_jsonl(path)


def test_binary_jsonl_is_one_line_error(tmp_path):
    path = tmp_path / "captions.jsonl"
    path.write_bytes(b"\xff\xfe\x00garbage\n\x89PNG")
    with pytest.raises(SemtokError, match=r"captions.jsonl' is not a UTF-8 text file") as error:
        read_caption_jsonl(path)
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_tokenize_captioned_mnist_carries_captions(fsq, tmp_path):
    manifest = tokenize_dataset(fsq, "mnist5k-captioned", "val", tmp_path / "t", progress=False)
    ids, _, info = read_token_file(manifest)
    rows = read_token_captions(manifest)
    expected = [[caption] for caption in CaptionedMNIST("val", 32).captions]
    assert ids.shape[0] == 500 and rows == expected
    assert info["captions_file"] == "t.captions.json" and info["data"]["captions"] == {
        "images": 500,
        "captions": 500,
    }


def test_tokenize_coco_views_repeat_captions_then_corruption(fsq, coco, tmp_path):
    with pytest.warns(CaptionMatchWarning):
        manifest = tokenize_dataset(
            fsq, str(coco), "train", tmp_path / "c", views=2, augment="flip", progress=False
        )
    ids, _, info = read_token_file(manifest)
    rows = read_token_captions(tmp_path / "c.npy")
    view = [["a small cat", "a cat on a mat"], ["a dog"]]
    assert ids.shape[0] == 4 and rows == view + view
    assert info["data"]["captions"] == {
        "images": 2,
        "captions": 3,
        "images_without_captions": 1,
        "captions_without_images": 1,
    }
    side = tmp_path / "c.captions.json"
    document = json.loads(side.read_text())
    for broken, message in [
        ("{", "is not valid JSON"),
        (json.dumps({**document, "format": "other"}), "is not a semtok-captions file"),
        (json.dumps({**document, "captions": rows[:3], "num_rows": 3}), "3 rows .* has 4 token rows"),
        (json.dumps({**document, "captions": [*rows[:3], []]}), "row 3 is"),
        (json.dumps({**document, "captions": [*rows[:3], ["ok", 3]]}), "row 3 holds"),
    ]:
        side.write_text(broken)
        with pytest.raises(SemtokError, match=f"c.captions.json'.*{message}"):
            read_token_captions(manifest)
    side.unlink()
    with pytest.raises(SemtokError, match="c.captions.json' .*does not exist"):
        read_token_captions(manifest)


def test_token_file_without_captions_and_bad_rows(tmp_path):
    manifest, _ = pattern_tokens(tmp_path / "plain", rows=4)
    assert read_token_captions(manifest) is None
    with pytest.raises(SemtokError, match="row 1 is"):
        write_token_captions(tmp_path / "x", [["a"], []])
    assert not (tmp_path / "x.captions.json").exists()


def test_cli_tokenize_prints_captions_line(fsq, coco, tmp_path, capsys):
    code = main(["tokenize", str(fsq), "--data", str(coco), "--split", "val", "--out", str(tmp_path / "v"), "--no-progress"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "captions: 3 captions of 3 images carried" in out
    assert read_token_captions(tmp_path / "v") == [["first"], ["only"], ["third"]]
