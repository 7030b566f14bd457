"""tokenize / sample / evaluate --generation split over 2 gloo processes give what one process gives: global batch j
goes to process j % world and is seeded by j alone; the main process gathers and writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ddp import needs_distributed, run_processes
from semtok.cli import main
from semtok.data.processes import Processes, in_batch_order, join
from test_cli_masked import TINY_NAR, fsq_tokenizer, image_folder

pytestmark = [needs_distributed, pytest.mark.slow]


@pytest.fixture(scope="module")
def masked_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A random 12-code FSQ tokenizer, an image folder, and a masked model trained 2 steps on its tokens."""
    from semtok.pipelines.tokenize import tokenize_dataset

    root = tmp_path_factory.mktemp("distributed")
    images = image_folder(root / "images")
    tokenizer = fsq_tokenizer(root / "tok", (4, 3))
    tokens = tokenize_dataset(tokenizer, str(images), "train", root / "tokens", progress=False)
    args = ["train", "nar", "--tokens", str(tokens), "--out", str(root / "run"), "--no-progress"]
    assert main([*args, *[a for key in TINY_NAR for a in ("--set", key)]]) == 0
    return {"root": root, "images": images, "tokenizer": tokenizer, "run": root / "run"}


def test_batches_are_dealt_round_robin_and_cover_every_item_once():
    parts = [Processes(rank, 3).batches(10, 3) for rank in range(3)]
    assert parts[0] == [(0, 0, 3), (3, 9, 10)] and parts[1] == [(1, 3, 6)] and parts[2] == [(2, 6, 9)]
    covered = sorted(i for part in parts for _, start, stop in part for i in range(start, stop))
    assert covered == list(range(10))
    gathered = [[(j, f"b{j}") for j, _, _ in part] for part in parts]
    assert in_batch_order(gathered) == ["b0", "b1", "b2", "b3"]
    assert join().world_size == 1  # no launcher, no group: one process


def _read_only_verbs(rank: int, tokenizer: str, images: str, shards: str, run: str, out: str) -> dict:
    """In each process of the job: tokenize the folder (2 augmented views, a DataLoader worker), tokenize its
    shards (2 workers), sample 7 images in batches of 2. One spawn per job size keeps the test short."""
    from semtok.generators.sampler import Sampler
    from semtok.generators.sampling import SamplingConfig
    from semtok.pipelines.tokenize import tokenize_dataset

    processes = join()
    folder = tokenize_dataset(
        tokenizer,
        images,
        "train",
        f"{out}-folder",
        batch_size=3,
        views=2,
        augment="crop_flip",
        seed=5,
        progress=False,
        num_workers=1,
        processes=processes,
    )
    streamed = tokenize_dataset(
        tokenizer,
        shards,
        "train",
        f"{out}-shards",
        batch_size=3,
        progress=False,
        num_workers=2,
        processes=processes,
    )
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 0])
    sampled = Sampler(run).sample(labels, SamplingConfig(steps=2), seed=7, batch_size=2, processes=processes)
    return {"folder": folder, "shards": streamed, "sampled": sampled}


def test_tokenize_and_sample_from_two_processes_equal_one(masked_run, tmp_path):
    """The token files (folder, and its shards: 3 images each, written shuffled, rows sorted by the sample's index)
    and the samples of 2 gloo processes equal 1 process's; the shards give the folder's own rows."""
    from semtok.data.shard_writer import write_shards
    from semtok.data.token_file import read_token_file
    from semtok.pipelines.tokenize import tokenize_dataset

    images, tokenizer = str(masked_run["images"]), str(masked_run["tokenizer"])
    write_shards(images, tmp_path / "shards", shard_size=3, split="train", progress=False)
    args = (tokenizer, images, str(tmp_path / "shards"), str(masked_run["run"]))
    one = run_processes(_read_only_verbs, 1, *args, str(tmp_path / "one"), timeout_s=300)
    two = run_processes(_read_only_verbs, 2, *args, str(tmp_path / "two"), timeout_s=300)
    # the main process writes and returns the manifest, the other None
    assert two[1]["folder"] is None and two[1]["shards"] is None and one[0]["folder"] and two[0]["folder"]
    ids1, labels1, _ = read_token_file(one[0]["folder"])
    ids2, labels2, _ = read_token_file(two[0]["folder"])
    assert ids1.shape == (16, 8, 8)  # 2 views x 8 images
    np.testing.assert_array_equal(ids1, ids2)
    np.testing.assert_array_equal(labels1, labels2)
    assert labels1.tolist() == [0] * 4 + [1] * 4 + [0] * 4 + [1] * 4
    assert not np.array_equal(ids1[:8], ids1[8:])  # two different augmented views
    assert not list(tmp_path.glob("*.partial"))

    plain = tokenize_dataset(tokenizer, images, "train", tmp_path / "plain", progress=False)
    shard_ids1, _, _ = read_token_file(one[0]["shards"])
    shard_ids2, shard_labels2, _ = read_token_file(two[0]["shards"])
    plain_ids, plain_labels, _ = read_token_file(plain)
    assert shard_ids1.shape == (8, 8, 8)
    np.testing.assert_array_equal(shard_ids1, shard_ids2)
    np.testing.assert_array_equal(shard_ids1, plain_ids)
    np.testing.assert_array_equal(shard_labels2, plain_labels)

    images1, ids1 = one[0]["sampled"]
    assert ids1.shape == (7, 8, 8)
    for rank in range(2):  # every process gets every batch back, in order
        torch.testing.assert_close(two[rank]["sampled"][1], ids1, rtol=0, atol=0)
        torch.testing.assert_close(two[rank]["sampled"][0], images1, rtol=0, atol=0)


def _evaluate(rank: int, run: str, images: str, cache: str, out: str) -> int:
    import os

    os.environ["SEMTOK_CACHE"] = cache
    args = ["evaluate", run, "--generation", "--data", images, "--steps", "2", "--batch-size", "1"]
    return main([*args, "--samples-npz", f"{out}.npz", "--out", f"{out}.json", "--no-progress"])


def test_evaluate_generation_from_two_processes_equals_one(masked_run, tmp_path):
    import json

    args = (str(masked_run["run"]), str(masked_run["images"]), str(tmp_path / "cache"))
    assert run_processes(_evaluate, 1, *args, str(tmp_path / "one"), timeout_s=300) == [0]
    assert run_processes(_evaluate, 2, *args, str(tmp_path / "two"), timeout_s=300) == [0, 0]
    one = json.loads((tmp_path / "one.json").read_text())
    two = json.loads((tmp_path / "two.json").read_text())
    assert one["processes"] == 1 and two["processes"] == 2 and one["samples"] == two["samples"] == 4
    for key in ("gfid", "precision", "recall"):
        assert one[key] == two[key], key
    with np.load(tmp_path / "one.npz") as a, np.load(tmp_path / "two.npz") as b:
        assert a["arr_0"].shape == (4, 32, 32, 3) and a["arr_0"].dtype == np.uint8
        np.testing.assert_array_equal(a["arr_0"], b["arr_0"])
        np.testing.assert_array_equal(a["arr_1"], [0, 0, 1, 1])


def test_evaluate_against_a_reference_npz_and_its_bad_input(masked_run, tmp_path, capsys):
    """--reference: `semtok stats` of the val folder gives the gFID of the folder's own cached statistics; a file
    without mu / sigma and --num-samples above the split's labels are one line, exit 2, before any sampling."""
    import json

    from semtok.metrics.image_batches import write_sample_batch

    run, images = str(masked_run["run"]), str(masked_run["images"])
    bad = tmp_path / "images.npz"
    write_sample_batch(bad, np.zeros((2, 8, 8, 3), np.uint8))
    assert main(["evaluate", run, "--generation", "--data", images, "--reference", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has no 'mu'/'sigma' arrays" in err[0], err
    assert (
        main(["evaluate", run, "--generation", "--data", images, "--num-samples", "5", "--no-progress"]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has 4 labels" in err[0] and "no repeats" in err[0], err
    stats = tmp_path / "val.npz"
    assert main(["stats", str(masked_run["images"] / "val"), "--out", str(stats), "--no-progress"]) == 0
    common = [
        "evaluate",
        run,
        "--generation",
        "--data",
        images,
        "--steps",
        "2",
        "--num-samples",
        "2",
        "--no-progress",
    ]
    assert main([*common, "--reference", str(stats), "--out", str(tmp_path / "ref.json")]) == 0
    with_file = json.loads((tmp_path / "ref.json").read_text())
    assert "precision_recall_skipped" in with_file and with_file["samples"] == 2
    assert with_file["sfid"] > 0  # `semtok stats` wrote ADM's spatial statistics too
    assert str(stats) in with_file["fid_reference"] and "2 evenly spaced" in with_file["protocol"]


def test_sample_under_torchrun_writes_the_one_process_images(masked_run, tmp_path):
    """The CLI under `torchrun` (the process group from the launcher's environment): 2 processes write the same
    PNGs as 1."""
    import os
    import subprocess
    import sys

    from PIL import Image

    # --num-images: torchrun's parser would read --n as an abbreviation of its own --nnodes / --nproc-per-node
    args = [
        "sample",
        str(masked_run["run"]),
        "--class",
        "1",
        "--num-images",
        "5",
        "--batch-size",
        "2",
        "--steps",
        "2",
    ]
    assert (
        main([*args, "--images", str(tmp_path / "one"), "--out", str(tmp_path / "one.png"), "--no-progress"])
        == 0
    )
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "semtok"]
    extra = ["--images", str(tmp_path / "two"), "--out", str(tmp_path / "two.png"), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launcher, *args, *extra], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("samples: ") == 1  # only the main process writes and reports
    one, two = sorted((tmp_path / "one").glob("*.png")), sorted((tmp_path / "two").glob("*.png"))
    assert len(one) == len(two) == 5
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
