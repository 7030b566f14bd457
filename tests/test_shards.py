"""webdataset shards: writing (`semtok shards`), reading by rank x worker, damaged shards, training and resume."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from semtok.cli import main
from semtok.data import build_dataset
from semtok.data.config import resolve_num_workers
from semtok.data.shard_files import ShardSkippedWarning, read_records
from semtok.data.shard_writer import write_shards
from semtok.data.shards import ShardDataset
from semtok.errors import SemtokError
from semtok.training.batches import batch_stream


@pytest.fixture
def class_folder(tmp_path: Path) -> Path:
    """24 images of 20x24 px in 3 class folders, PNG and JPEG alternating."""
    rng = np.random.default_rng(1)
    root = tmp_path / "classes"
    for label, name in enumerate(("a", "b", "c")):
        (root / name).mkdir(parents=True)
        for i in range(8):
            pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
            pixels[:, :, label] = 255
            suffix = "jpg" if i % 2 else "png"
            Image.fromarray(pixels).save(root / name / f"{i}.{suffix}")
    return root


@pytest.fixture
def shard_dir(class_folder: Path, tmp_path: Path) -> Path:
    out = tmp_path / "shards"
    write_shards(class_folder, out, shard_size=5, progress=False)
    return out


def test_round_trip(class_folder, shard_dir):
    info = json.loads((shard_dir / "shards.json").read_text())
    assert [entry["count"] for entry in info["shards"]] == [5, 5, 5, 5, 4] and info["total"] == 24
    assert info["class_names"] == ["a", "b", "c"] and info["num_classes"] == 3 and info["split"] == "all"
    assert sorted(p.name for p in shard_dir.glob("*.tar")) == [f"{i:06d}.tar" for i in range(5)]
    seen = {}
    for url in sorted(shard_dir.glob("*.tar")):
        for record in read_records(str(url)):
            meta = json.loads(record["json"])
            assert record["__key__"] == f"{meta['index']:09d}"
            path = class_folder / meta["path"]
            ext = "jpg" if path.suffix == ".jpg" else "png"
            assert record[ext] == path.read_bytes()  # the original file bytes, no re-encode
            assert int(record["cls"]) == "abc".index(path.parent.name)
            seen[meta["index"]] = meta["path"]
    assert sorted(seen) == list(range(24)) and len(set(seen.values())) == 24
    dataset = build_dataset(shard_dir, "val", 16)
    assert isinstance(dataset, ShardDataset) and len(dataset) == 24 and dataset.num_classes == 3
    items = list(dataset)
    assert sorted(index for _, _, index in items) == list(range(24))
    for image, label, index in items:
        assert (
            image.shape == (3, 16, 16)
            and image.dtype == torch.float32
            and -1 <= image.min() <= image.max() <= 1
        )
        assert label == "abc".index(Path(seen[index]).parent.name)
    assert "5 shards, 24 samples, 3 classes" in dataset.describe()


def test_captions_round_trip(tmp_path):
    root = tmp_path / "captioned"
    root.mkdir()
    rows = []
    for i in range(6):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / f"{i}.png")
        rows.append(json.dumps({"file": f"{i}.png", "captions": [f"grey {i}", f"tone {i}"]}))
    (root / "captions.jsonl").write_text("\n".join(rows) + "\n")
    out = tmp_path / "shards"
    info = write_shards(root, out, shard_size=4, progress=False)
    assert info["captioned"] and info["total"] == 6 and info["num_classes"] == 0
    dataset = ShardDataset(out, 8)
    for record in read_records(str(out / "000000.tar")):
        meta = json.loads(record["json"])
        assert "cls" not in record
        assert meta["captions"] == [f"grey {meta['path'][0]}", f"tone {meta['path'][0]}"]
        assert dataset.captions_of(meta["index"]) == meta["captions"]
    assert sorted(label for _, label, _ in dataset) == [-1] * 6


def _indices(dataset: ShardDataset, workers: int) -> list[int]:
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=workers)
    return [int(index) for _, _, index in loader]


def test_every_sample_once_across_ranks_and_workers(shard_dir):
    for epoch in (0, 1):
        seen = []
        for rank in (0, 1):
            dataset = ShardDataset(shard_dir, 8, rank=rank, world_size=2)
            dataset.set_epoch(epoch)
            seen.extend(_indices(dataset, workers=2))
        assert sorted(seen) == list(range(24)), epoch  # every image exactly once, no duplicates
    first, second = (ShardDataset(shard_dir, 8).epoch_shards(e, 0, 1) for e in (0, 1))
    assert (
        sorted(first) == sorted(second) == list(range(5)) and first != second
    )  # shard order moves per epoch


def test_truncated_shard_is_skipped_with_its_name(shard_dir):
    damaged = shard_dir / "000002.tar"
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 3])
    dataset = ShardDataset(shard_dir, 8)
    with pytest.warns(ShardSkippedWarning, match="000002.tar"):
        indices = [index for _, _, index in dataset]
    assert 19 <= len(indices) < 24 and len(set(indices)) == len(indices)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ShardSkippedWarning)
        stream = dataset.train_items(rank=0, stream=0)
        assert len([next(stream) for _ in range(60)]) == 60  # training mode keeps streaming


def test_corrupt_sample_is_skipped_with_its_shard(tmp_path):
    from webdataset import TarWriter

    out = tmp_path / "bad"
    out.mkdir()
    good = __import__("io").BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(good, format="PNG")
    with open(out / "000000.tar", "wb") as stream, TarWriter(stream, encoder=False) as writer:
        for index in range(4):
            data = b"not an image" if index == 2 else good.getvalue()
            writer.write(
                {"__key__": f"{index:09d}", "png": data, "cls": b"1", "json": b'{"index": %d}' % index}
            )
    dataset = ShardDataset(str(out / "000000.tar"), 8)
    assert len(dataset) == 4 and dataset.num_classes == 0  # counted from the tar: no shards.json beside it
    with pytest.warns(ShardSkippedWarning, match=r"000000.tar.*'000000002'"):
        assert [index for _, _, index in dataset] == [0, 1, 3]
    with pytest.warns(ShardSkippedWarning):
        stream = dataset.train_items(rank=0, stream=0)
        drawn = [index for _, _, index in (next(stream) for _ in range(8))]
    assert 2 not in drawn and len(drawn) == 8  # training mode: a replacement keeps the draw's count
    with pytest.raises(SemtokError, match="no random access"):
        dataset[0]


def test_pattern_matching_nothing(tmp_path, capsys):
    pattern = str(tmp_path / "none" / "{000000..000003}.tar")
    with pytest.raises(SemtokError, match="matches no file") as error:
        build_dataset(pattern, "train", 16)
    assert "\n" not in str(error.value) and pattern in str(error.value)
    assert main(["shards", pattern, "--out", str(tmp_path / "out")]) == 2
    assert "matches no file" in capsys.readouterr().err


def test_brace_pattern_reads_the_shards(shard_dir):
    dataset = build_dataset(str(shard_dir / "{000000..000004}.tar"), "train", 8, augment="crop_flip")
    assert len(dataset) == 24 and dataset.class_names == ["a", "b", "c"] and dataset.is_random
    assert sorted(index for _, _, index in dataset) == list(range(24))


def test_stream_resume_is_exact(shard_dir):
    """Batches after resuming at step 3 equal a straight run's steps 3.., with 2 real DataLoader workers."""
    dataset = build_dataset(shard_dir, "train", 8, augment="crop_flip", seed=3)

    def batches(start: int, count: int) -> list:
        stream = batch_stream(dataset, 4, seed=3, start_step=start, rank=0, world_size=1, num_workers=2)
        return [next(stream) for _ in range(count)]

    straight, resumed = batches(0, 9), batches(3, 6)
    for a, b in zip(straight[3:], resumed, strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert straight[0][0].shape == (4, 3, 8, 8) and straight[0][2].dtype == torch.int64
    assert not torch.equal(straight[0][0], straight[1][0])
    ranks = [next(batch_stream(dataset, 4, 3, 0, rank, 2, 0))[2] for rank in (0, 1)]
    assert ranks[0].shape == (2,) and not torch.equal(ranks[0], ranks[1])  # each rank its own stream


def test_num_workers_auto(shard_dir):
    assert resolve_num_workers(-1, build_dataset("mnist5k", "train", 8)) == 0
    assert resolve_num_workers(-1, ShardDataset(shard_dir, 8)) >= 1
    assert resolve_num_workers(3, ShardDataset(shard_dir, 8)) == 3


def test_shards_cli(class_folder, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["shards", str(class_folder), "--out", str(out), "--shard-size", "10", "--no-progress"]) == 0
    assert "3 shards, 24 samples (3 classes)" in capsys.readouterr().out
    assert [e["count"] for e in json.loads((out / "shards.json").read_text())["shards"]] == [10, 10, 4]
    assert main(["shards", str(class_folder), "--out", str(out)]) == 2
    assert "already holds shards" in capsys.readouterr().err
    assert main(["shards", str(out), "--out", str(tmp_path / "again")]) == 2


def test_mnist_shards_are_png(tmp_path):
    out = tmp_path / "mnist"
    info = write_shards("mnist5k", out, shard_size=300, split="val", progress=False, shuffle_seed=None)
    assert info["total"] == 500 and info["num_classes"] == 10
    record = next(read_records(str(out / "000000.tar")))
    reference = build_dataset("mnist5k", "val", 28)
    pixels = np.asarray(Image.open(__import__("io").BytesIO(record["png"])))
    assert np.array_equal(pixels, reference.images_uint8[0].permute(1, 2, 0).numpy())  # lossless
    assert int(record["cls"]) == int(reference.labels[0])


@pytest.mark.slow
def test_vqkd_trains_on_shards_and_resumes(image_folder, tiny_vqkd_overrides, tmp_path):
    from semtok.config import load_config
    from semtok.training import train
    from semtok.training.vqkd import VQKDRunConfig

    shards = tmp_path / "train-shards"
    write_shards(image_folder, shards, shard_size=6, split="train", progress=False)
    overrides = [*tiny_vqkd_overrides[:-1], f"data.dataset={shards}", "data.num_workers=2"]

    def run(out, **kwargs):
        return train(
            "vqkd", load_config(VQKDRunConfig, "vqkd-mnist", overrides), out, progress=False, **kwargs
        )

    summary = run(tmp_path / "straight")
    assert (
        summary["teacher_features"] == "computed every step (streamed shards)"
        and summary["train_images"] == 20
    )
    assert run(tmp_path / "split", stop_at=5)["stopped_at_step"] == 5
    run(tmp_path / "split", resume=True)
    straight = load_file(str(tmp_path / "straight" / "tokenizer" / "model.safetensors"))
    split = load_file(str(tmp_path / "split" / "tokenizer" / "model.safetensors"))
    for key in straight:  # exact resume on a stream (same world size and worker count)
        assert torch.equal(straight[key], split[key]), key
