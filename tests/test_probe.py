"""Code vectors of every tokenizer kind and the linear probe on frozen tokens (tiny models, seconds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semtok.cli import main
from semtok.errors import SemtokError
from semtok.evaluation.probe import linear_probe, probe_features, stratified_holdout
from semtok.teachers import ClusterTeacherConfig, TeacherConfig
from semtok.tokenizers import (
    ClusterConfig,
    ClusterTokenizer,
    ConvNetConfig,
    CVQConfig,
    CVQQuantizerConfig,
    CVQTokenizer,
    FSQConfig,
    FSQTokenizer,
    Tokenizer,
    VQGANConfig,
    VQGANQuantizerConfig,
    VQGANTokenizer,
    VQKDConfig,
    VQKDQuantizerConfig,
    VQKDTokenizer,
)

TINY_CONV = {
    "image_size": 32,
    "conv": ConvNetConfig(
        channels=8, channel_mult=(1, 2, 2), num_res_blocks=1, z_channels=8, attn_resolutions=()
    ),
}  # f = 4: 8x8 tokens at 32 px


def tiny_tokenizer(kind: str) -> Tokenizer:
    """A seeded random tokenizer of ``kind``; the codebooks are k-means initialised on one batch."""
    torch.manual_seed(0)
    if kind == "vqkd":
        model = VQKDTokenizer(
            VQKDConfig(
                image_size=32, patch_size=8, encoder="tiny", encoder_depth=1, quantizer=VQKDQuantizerConfig(code_dim=8, num_codes=16),
                decoder_width=32, decoder_heads=2, teacher=TeacherConfig(name="effnet-lite0", dim=112),
            )
        )  # fmt: skip
    elif kind == "cluster":
        model = ClusterTokenizer(
            ClusterConfig(
                image_size=32,
                teacher=ClusterTeacherConfig(name="effnet-lite0", input_size=64, stride=16, dim=112),
                num_codes=16,
            )
        )
    elif kind == "fsq":
        model = FSQTokenizer(FSQConfig(**TINY_CONV, levels=(4, 3, 5)))
    else:
        config_class, cls, quantizer = {
            "vqgan": (VQGANConfig, VQGANTokenizer, VQGANQuantizerConfig),
            "cvq": (CVQConfig, CVQTokenizer, CVQQuantizerConfig),
        }[kind]
        model = cls(config_class(**TINY_CONV, quantizer=quantizer(code_dim=6, num_codes=16, kmeans_iters=3)))
    if kind in ("vqkd", "vqgan", "cvq"):
        model.train()(images(16, seed=1))  # k-means init: codes spread over the data, not random
    return model.eval()


def images(batch: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, 32, 32, generator=g) * 2 - 1


def quantizer_output(model: Tokenizer, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """What the quantizer produces in the forward pass: (quantized [B, D, h, w], ids [B, h, w])."""
    with torch.no_grad():
        if isinstance(model, VQKDTokenizer):
            z_BND, (h, w) = model.features(x)
            q_BND, ids, _ = model.quantizer(z_BND)
            return q_BND.transpose(1, 2).reshape(len(x), -1, h, w), ids.view(len(x), h, w)
        if isinstance(model, ClusterTokenizer):
            q_BDhw, ids, _ = model(x)
            return q_BDhw, ids
        q_BhwD, ids, _ = model.quantizer(model.latents(x))
        return q_BhwD.permute(0, 3, 1, 2), ids


EXPECTED_DIM = {"vqkd": 8, "cluster": 112, "fsq": 3, "vqgan": 6, "cvq": 6}


@pytest.mark.parametrize("kind", ["vqkd", "cluster", "fsq", "vqgan", "cvq"])
def test_code_vectors_match_the_quantizer(kind):
    model = tiny_tokenizer(kind)
    x = images()
    ids = model.encode(x)
    vectors = model.code_vectors(ids)
    h, w = model.grid_size
    assert vectors.shape == (4, EXPECTED_DIM[kind], h, w) and vectors.dtype == torch.float32
    quantized, forward_ids = quantizer_output(model, x)
    assert torch.equal(forward_ids, ids)
    assert len(torch.unique(ids)) > 1  # several distinct codes, so a wrong lookup would show
    torch.testing.assert_close(vectors, quantized.float(), atol=1e-6, rtol=0)
    if kind in ("vqkd", "cluster", "cvq"):  # cosine codebooks: unit vectors
        torch.testing.assert_close(vectors.norm(dim=1), torch.ones(4, h, w), atol=1e-5, rtol=0)
    if kind == "fsq":
        assert vectors.abs().max() <= 1


def test_code_vectors_reject_bad_ids():
    model = tiny_tokenizer("fsq")
    with pytest.raises(SemtokError, match=r"\[0, 60\)"):
        model.code_vectors(torch.full((1, 2, 2), 60))
    with pytest.raises(SemtokError, match=r"\[B, h, w\]"):
        model.code_vectors(torch.zeros(4, dtype=torch.long))
    with pytest.raises(SemtokError, match="integer"):
        model.code_vectors(torch.zeros(1, 2, 2))


# ------------------------------------------------------------------------------------------------ the probe
def blobs(n_per_class: int, num_classes: int, dim: int, seed: int, spread: float = 0.3):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(123)) * 3
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    x = centres[y] + spread * torch.randn(len(y), dim, generator=g)
    return x, y


@pytest.mark.slow
def test_separable_features_reach_100_percent():
    train_x, train_y = blobs(60, 4, 16, seed=0)
    val_x, val_y = blobs(20, 4, 16, seed=1)
    result = probe_features(train_x, train_y, val_x, val_y)
    assert result["val_top1"] == 1.0 and result["train_top1"] == 1.0 and result["holdout_top1"] == 1.0
    assert result["num_classes"] == 4 and result["chance"] == 0.25


@pytest.mark.slow
def test_random_labels_stay_near_chance_and_val_never_steers_the_fit():
    train_x, _ = blobs(60, 4, 16, seed=0)
    val_x, val_y = blobs(20, 4, 16, seed=1)
    train_y = torch.randint(0, 4, (len(train_x),), generator=torch.Generator().manual_seed(0))
    options = {"weight_decays": (1e-4, 1e-2, 1.0), "max_iter": 100}
    result = probe_features(train_x, train_y, val_x, val_y, **options)
    assert result["val_top1"] < 0.5  # 4 classes: chance is 0.25
    shuffled = val_y[torch.randperm(len(val_y), generator=torch.Generator().manual_seed(2))]
    again = probe_features(train_x, train_y, val_x, shuffled, **options)
    for key in ("weight_decay", "weight_decay_search", "train_top1", "holdout_top1"):
        assert again[key] == result[key], key  # val labels change nothing but the val scores
    repeat = probe_features(train_x, train_y, val_x, val_y, **options)
    assert repeat["val_top1"] == result["val_top1"] and repeat["val_loss"] == result["val_loss"]


def test_holdout_is_stratified_and_seeded():
    y = torch.tensor([0] * 30 + [1] * 10 + [2])
    fit, holdout = stratified_holdout(y, 0.1, seed=0)
    assert sorted(torch.cat([fit, holdout]).tolist()) == list(range(len(y)))
    assert torch.bincount(y[holdout], minlength=3).tolist() == [3, 1, 0]
    assert torch.equal(stratified_holdout(y, 0.1, seed=0)[1], holdout)
    assert not torch.equal(stratified_holdout(y, 0.1, seed=1)[1], holdout)


@pytest.mark.slow
def test_probe_on_a_tiny_tokenizer_and_folder(image_folder, tmp_path):
    run = tmp_path / "run"
    tiny_tokenizer("vqgan").save_pretrained(run / "tokenizer")
    result = linear_probe(run, str(image_folder), batch_size=8, progress=False)
    assert result["kind"] == "vqgan" and result["feature_dim"] == 6 and result["grid"] == [8, 8]
    assert result["train_images"] == 20 and result["val_images"] == 6 and result["num_classes"] == 2
    for key in ("val_top1", "train_top1", "holdout_top1"):
        assert 0.0 <= result[key] <= 1.0, key
    assert result["seconds"] >= result["encode_seconds"] > 0

    assert main(["probe", str(run), "--data", str(image_folder), "--batch-size", "8", "--no-progress"]) == 0
    written = json.loads((run / "probe_val.json").read_text())
    assert written["val_top1"] == result["val_top1"] and written["train_top1"] == result["train_top1"]


def test_unlabeled_data_is_an_error(tmp_path, capsys):
    folder = tmp_path / "unlabeled"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    tiny_tokenizer("fsq").save_pretrained(tmp_path / "tok")
    with pytest.raises(SemtokError, match=r"'.*unlabeled'.*no labels"):
        linear_probe(tmp_path / "tok", str(folder), progress=False)
    assert main(["probe", str(tmp_path / "tok"), "--data", str(folder), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no labels" in err[0] and str(folder) in err[0]


@pytest.mark.slow
def test_cli_bad_path_is_one_line(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "semtok", "probe", str(tmp_path / "missing"), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing" in lines[0] and "Traceback" not in result.stderr


def test_probe_from_token_files_equals_probe_from_images(image_folder, tmp_path):
    from semtok.evaluation.probe import linear_probe, probe_token_files
    from semtok.pipelines.tokenize import tokenize_dataset

    torch.manual_seed(0)
    model = FSQTokenizer(FSQConfig(**TINY_CONV, levels=(4, 3, 5))).eval()
    folder = model.save_pretrained(tmp_path / "fsq")
    train = tokenize_dataset(folder, str(image_folder), "train", tmp_path / "train", progress=False)
    val = tokenize_dataset(folder, str(image_folder), "val", tmp_path / "val", progress=False)
    from_images = linear_probe(folder, str(image_folder), progress=False)
    from_tokens = probe_token_files(folder, train, val)
    for key in ("val_top1", "train_top1", "weight_decay", "feature_dim", "train_images"):
        assert from_tokens[key] == from_images[key], key


# ------------------------------------------------------------------------------------------- the probe inputs
def tokenize_splits(model: Tokenizer, image_folder: Path, tmp_path: Path) -> tuple[Path, Path, Path]:
    from semtok.pipelines.tokenize import tokenize_dataset

    folder = model.save_pretrained(tmp_path / model.kind)
    train, val = (
        tokenize_dataset(folder, str(image_folder), split, tmp_path / f"{model.kind}-{split}", progress=False)
        for split in ("train", "val")
    )
    return folder, train, val


@pytest.mark.parametrize("kind", ["vqkd", "cluster", "fsq"])
def test_probe_inputs_shapes_and_pooled_unchanged(kind, image_folder, tmp_path):
    from semtok.data.token_file import read_token_file
    from semtok.evaluation.probe import (
        PROBE_INPUTS,
        pooled_from_token_file,
        probe_token_files,
        token_features,
    )

    model = tiny_tokenizer(kind)
    folder, train, val = tokenize_splits(model, image_folder, tmp_path)
    ids = torch.from_numpy(read_token_file(train)[0].astype("int64"))
    n, (h, w), dim = len(ids), model.grid_size, EXPECTED_DIM[kind]
    expected = {"pooled": dim, "flat": h * w * dim, "decoded": 112, "histogram": model.num_codes}
    vectors = model.code_vectors(ids)
    for name in PROBE_INPUTS:
        if name == "decoded" and kind == "fsq":
            continue
        features, labels = pooled_from_token_file(model, train, inputs=name)
        assert features.shape == (n, expected[name]) and features.dtype == torch.float32, name
        assert labels.shape == (n,)
        if name == "pooled":  # the same numbers as before the inputs: the mean code vector
            torch.testing.assert_close(features, vectors.mean(dim=(2, 3)), atol=0, rtol=0)
        elif name == "flat":
            torch.testing.assert_close(features, vectors.flatten(1), atol=0, rtol=0)
        elif name == "histogram":
            torch.testing.assert_close(features.sum(dim=1), torch.ones(n), atol=1e-6, rtol=0)
            counts = torch.bincount(ids[0].flatten(), minlength=model.num_codes).float() / (h * w)
            torch.testing.assert_close(features[0], counts, atol=0, rtol=0)
        else:
            decoded = model.decode_features(ids).mean(dim=(2, 3))
            torch.testing.assert_close(features, decoded, atol=1e-6, rtol=0)
        assert torch.equal(token_features(model, ids[:3], name), features[:3]), (
            name
        )  # batching changes nothing
    result = probe_token_files(folder, train, val, max_iter=10, inputs="histogram")
    assert result["input"] == "histogram" and result["feature_dim"] == model.num_codes
    assert result["pooling"] == PROBE_INPUTS["histogram"]
    again = probe_token_files(folder, train, val, max_iter=10, inputs="histogram")
    assert (
        again["val_top1"] == result["val_top1"] and again["val_loss"] == result["val_loss"]
    )  # deterministic


def test_pooled_input_is_the_default_protocol(image_folder, tmp_path):
    from semtok.evaluation.probe import probe_token_files

    folder, train, val = tokenize_splits(tiny_tokenizer("vqkd"), image_folder, tmp_path)
    default = probe_token_files(folder, train, val, max_iter=10)
    pooled = probe_token_files(folder, train, val, max_iter=10, inputs="pooled")
    assert default["input"] == "pooled" and default["feature_dim"] == 8
    assert default["pooling"] == "mean of code vectors over the token grid"
    for key in ("val_top1", "train_top1", "val_loss", "weight_decay", "weight_decay_search"):
        assert default[key] == pooled[key], key
    flat = probe_token_files(folder, train, val, max_iter=10, inputs="flat")
    assert flat["input"] == "flat" and flat["feature_dim"] == 4 * 4 * 8  # 4x4 grid (patch 8), 8-d codes


def test_decoded_input_needs_a_feature_tokenizer(image_folder, tmp_path, capsys):
    from semtok.evaluation.probe import probe_token_files

    folder, train, val = tokenize_splits(tiny_tokenizer("fsq"), image_folder, tmp_path)
    with pytest.raises(SemtokError, match="probe input 'decoded'.*'fsq'"):
        probe_token_files(folder, train, val, inputs="decoded")
    with pytest.raises(SemtokError, match="probe input: expected one of pooled, flat, decoded, histogram"):
        probe_token_files(folder, train, val, inputs="mean")
    args = ["probe", str(folder), "--data", str(image_folder), "--input", "decoded", "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'decoded'" in err[0] and "Traceback" not in err[0]


def test_cli_probe_input_writes_its_own_json(image_folder, tmp_path):
    run = tmp_path / "run"
    tiny_tokenizer("vqkd").save_pretrained(run / "tokenizer")
    args = ["probe", str(run), "--data", str(image_folder), "--batch-size", "8", "--max-iter", "10"]
    assert main([*args, "--input", "decoded", "--no-progress"]) == 0
    written = json.loads((run / "probe_val_decoded.json").read_text())
    assert written["input"] == "decoded" and written["feature_dim"] == 112
    assert not (run / "probe_val.json").exists()
