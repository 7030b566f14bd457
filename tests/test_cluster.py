"""Cluster tokenizers: offline build (memmapped features + faiss spherical k-means), CLI, pixel decoder, evaluation."""

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from semtok.cli import main
from semtok.config import from_dict, load_config, to_dict
from semtok.data import build_dataset
from semtok.errors import SemtokError
from semtok.tokenizers import ClusterTokenizer, Tokenizer
from semtok.tokenizers.cluster_build import ClusterRunConfig, build_cluster_tokenizer, reseed_empty_codes

# effnet-lite0 at 64 px input, stride 16 -> a 4x4 grid of 112-d features; 20 train images -> 320 vectors
TINY_CLUSTER = [
    "model.teacher.name=effnet-lite0",
    "model.teacher.input_size=64",
    "model.teacher.stride=16",
    "model.num_codes=16",
    "model.kmeans_iters=5",
    "build.batch_size=8",
]


def build(image_folder: Path, out: Path, *extra: str) -> dict:
    config = load_config(
        ClusterRunConfig, "cluster-mnist", [*TINY_CLUSTER, f"data.dataset={image_folder}", *extra]
    )
    return build_cluster_tokenizer(config, out, progress=False)


def train_images(image_folder: Path) -> torch.Tensor:
    dataset = build_dataset(image_folder, "train", 32)
    return torch.stack([dataset[i][0] for i in range(len(dataset))])


@pytest.mark.slow
def test_build_via_api_and_cli(image_folder, tmp_path, capsys):
    summary = build(image_folder, tmp_path / "api")
    assert summary["images"] == 20 and summary["vectors"] == 20 * 16 and summary["grid"] == [4, 4]
    assert summary["codes_used"] == 16 and summary["empty_codes_left"] == 0 and summary["min_code_count"] >= 1

    features = np.load(tmp_path / "api" / "features.npy", mmap_mode="r")
    assert isinstance(features, np.memmap) and features.shape == (320, 112) and features.dtype == np.float32

    tokenizer = Tokenizer.from_pretrained(tmp_path / "api" / "tokenizer")
    assert isinstance(tokenizer, ClusterTokenizer) and tokenizer.grid_size == (4, 4)
    codebook = tokenizer.quantizer.codebook
    assert codebook.shape == (16, 112)
    assert torch.allclose(codebook.norm(dim=1), torch.ones(16), atol=1e-5)
    # no dead codes on the build features
    ids = tokenizer.quantizer.assign(torch.from_numpy(np.array(features)))
    assert torch.bincount(ids, minlength=16).min() >= 1
    # the saved teacher is the pretrained one: encoding the train images reproduces the stored features' ids
    encoded = tokenizer.encode(train_images(image_folder))
    assert encoded.shape == (20, 4, 4) and encoded.dtype == torch.int64
    assert 0 <= int(encoded.min()) and int(encoded.max()) < 16
    assert (encoded.reshape(-1) == ids).float().mean() > 0.99
    decoded = tokenizer.decode_features(encoded[:2])
    assert decoded.shape == (2, 112, 4, 4)
    with pytest.raises(SemtokError, match="no pixel decoder"):
        tokenizer.decode(encoded[:2])

    # the CLI gives the same tokenizer for the same seed; another seed gives another codebook
    common = ["build", "cluster", "--data", str(image_folder), "--teacher", "effnet-lite0"]
    common += ["--codebook-size", "16", "--iters", "5", "--no-progress"]
    common += ["--set", "model.teacher.input_size=64", "--set", "build.batch_size=8"]
    assert main([*common, "--out", str(tmp_path / "cli"), "--drop-features"]) == 0
    assert "16 codes (16 used" in capsys.readouterr().out
    assert not (tmp_path / "cli" / "features.npy").exists()
    a = load_file(str(tmp_path / "api" / "tokenizer" / "model.safetensors"))
    b = load_file(str(tmp_path / "cli" / "tokenizer" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=1e-6), key
    assert main([*common, "--seed", "1", "--max-images", "12", "--out", str(tmp_path / "seed1")]) == 0
    other = load_file(str(tmp_path / "seed1" / "tokenizer" / "model.safetensors"))
    assert not torch.allclose(other["quantizer.codebook"], a["quantizer.codebook"])
    assert np.load(tmp_path / "seed1" / "features.npy", mmap_mode="r").shape == (12 * 16, 112)


def test_empty_codes_are_reseeded():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 8)).astype(np.float32)
    centroids = np.tile(features[:1], (5, 1))  # five identical codes: all but the first get no vector
    centroids[1] = -features[0]
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    new, info = reseed_empty_codes(features, centroids, seed=0)
    assert info["reseeded"] >= 3 and info["empty_after"] == 0 and info["counts"].min() >= 1
    assert np.allclose(np.linalg.norm(new, axis=1), 1, atol=1e-5)


@pytest.mark.slow
def test_pixel_decoder_and_evaluate(image_folder, tmp_path):
    from semtok.evaluation.tokenizer import evaluate_tokenizer
    from semtok.training import train
    from semtok.training.pixel import RUN_CONFIGS

    build(image_folder, tmp_path / "cluster")
    results = evaluate_tokenizer(tmp_path / "cluster", str(image_folder), "val", progress=False)
    assert results["kind"] == "cluster" and results["teacher"] == "effnet-lite0"
    assert 0 < results["usage"] <= 1 and results["perplexity"] >= 1
    assert 0 < results["teacher_cosine"] <= 1 and "psnr" not in results

    overrides = [
        f"tokenizer={tmp_path / 'cluster'}",
        "decoder.conv.channels=16",
        "decoder.conv.channel_mult=[1, 2, 2, 2]",  # 4x4 codes -> 32 px
        "decoder.conv.z_channels=16",
        "train.steps=2",
        "train.batch_size=4",
        "train.warmup_steps=1",
        "train.checkpoint_every=2",
        "train.log_every=1",
        "loss.disc_start=1",
        "loss.disc_channels=8",
        "loss.disc_layers=1",
        "loss.perceptual=teacher",
        f"data.dataset={image_folder}",
    ]
    config = load_config(RUN_CONFIGS["decoder"], "decoder-vqkd-mnist", overrides)
    train("decoder", config, tmp_path / "dec", progress=False)
    before = load_file(str(tmp_path / "cluster" / "tokenizer" / "model.safetensors"))
    tokenizer = Tokenizer.from_pretrained(tmp_path / "dec" / "tokenizer")
    after = tokenizer.state_dict()
    for key, value in before.items():  # teacher and codebook untouched
        assert torch.equal(after[key], value), key
    ids = tokenizer.encode(torch.rand(2, 3, 32, 32) * 2 - 1)
    images = tokenizer.decode(ids)
    assert images.shape == (2, 3, 32, 32) and images.abs().max() <= 1
    results = evaluate_tokenizer(tmp_path / "dec", str(image_folder), "val", progress=False, fid=False)
    assert 0 < results["psnr"] < 100 and 0 < results["teacher_cosine"] <= 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--teacher", "no-such-teacher"], "unknown teacher 'no-such-teacher'"),
        (["--data", "EMPTY"], "no image files found"),
        (["--codebook-size", "5000"], "use more images or a smaller --codebook-size"),
        (["--codebook-size", "0"], "model.num_codes"),
    ],
)
def test_bad_input_is_one_line(image_folder, tmp_path, capsys, args, message):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = [str(empty) if a == "EMPTY" else a for a in args]
    base = ["build", "cluster", "--data", str(image_folder), "--set", "model.teacher.input_size=64"]
    assert main([*base, *args, "--no-progress", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cluster_configs():
    paper = load_config(ClusterRunConfig, "cluster-clip-in1k")
    assert (paper.model.teacher.name, paper.model.num_codes, paper.model.image_size) == (
        "clip-vit-b16-preproj",
        8192,
        256,
    )
    default = load_config(ClusterRunConfig, "cluster-mnist")
    m = default.model
    assert (m.teacher.name, m.teacher.input_size, m.teacher.stride, m.image_size, m.num_codes) == (
        "effnet-lite0",
        128,
        16,
        32,
        1024,
    )
    for config in (paper, default):
        assert from_dict(ClusterRunConfig, to_dict(config)) == config
    from semtok.training.cluster_online import ClusterTrainRunConfig

    online = load_config(ClusterTrainRunConfig, "cluster-online-clip-in1k")
    assert (
        online.model.teacher.name,
        online.model.num_codes,
        online.train.steps,
        online.train.batch_size,
    ) == (
        "clip-vit-b16-preproj",
        8192,
        100000,
        256,
    )
    assert load_config(ClusterTrainRunConfig, "cluster-online-mnist").model.num_codes == 1024
    with pytest.raises(SemtokError, match="build.max_images"):
        load_config(ClusterRunConfig, "cluster-mnist", ["build.max_images=-1"])


@pytest.mark.slow
def test_online_codebook_trains_resumes_and_loads(image_folder, tmp_path):
    from semtok.training import train
    from semtok.training.cluster_online import ClusterTrainRunConfig

    overrides = [
        *[o for o in TINY_CLUSTER if not o.startswith("build.")],
        "codebook.reseed_steps=1",
        "train.steps=4",
        "train.batch_size=8",
        "train.checkpoint_every=2",
        "train.log_every=1",
        f"data.dataset={image_folder}",
    ]

    def run(out, **kwargs):
        config = load_config(ClusterTrainRunConfig, "cluster-online-mnist", overrides)
        return train("cluster", config, out, progress=False, **kwargs)

    summary = run(tmp_path / "straight")
    assert summary["final_losses"]["cosine"] > 0 and summary["codes_reseeded_this_session"] >= 0
    assert run(tmp_path / "split", stop_at=2)["stopped_at_step"] == 2
    run(tmp_path / "split", resume=True)
    a = load_file(str(tmp_path / "straight" / "tokenizer" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "tokenizer" / "model.safetensors"))
    assert torch.allclose(a["quantizer.codebook"], b["quantizer.codebook"], atol=1e-6)
    tokenizer = Tokenizer.from_pretrained(tmp_path / "straight" / "tokenizer")
    assert isinstance(tokenizer, ClusterTokenizer)
    assert torch.allclose(tokenizer.quantizer.codebook.norm(dim=1), torch.ones(16), atol=1e-5)
    ids = tokenizer.encode(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert ids.shape == (2, 4, 4) and int(ids.max()) < 16
    out = tmp_path / "cli"
    args = ["train", "cluster", "--data", str(image_folder), "--no-progress", "--out", str(out)]
    args += [f"--set={o}" for o in overrides if not o.startswith("data.")]
    assert main(args) == 0 and (out / "tokenizer" / "model.safetensors").exists()


def test_online_reseeds_unused_codes():
    from semtok.quantizers.online_codebook import OnlineCodebook

    codebook = OnlineCodebook(8, 4)
    x = torch.nn.functional.normalize(torch.randn(32, 4), dim=-1)
    codebook.initialize(x)
    counts = torch.tensor([5.0, 0, 3, 0, 0, 1, 1, 22])
    assert codebook.reseed(x, counts, reseed_steps=2) == 0  # idle one step only
    assert codebook.reseed(x, counts, reseed_steps=2) == 3
    assert codebook.steps_unused.tolist() == [0] * 8
    rows = codebook.weight.detach()[[1, 3, 4]]
    assert all(bool((row == x).all(dim=1).any()) for row in rows)  # re-seeded from batch features
    codes, ids, aux = codebook(x)
    aux["loss"].backward()
    got = aux["counts"]
    assert codebook.weight.grad is not None and got.sum() == 32 and ids.shape == (32,)
    assert codes.shape == (32, 4) and aux["restarted"] == 0


def test_online_codebook_triple():
    """forward -> (chosen unit codes [N, C] with the codebook's gradient, ids [N], aux with the loss and counts)."""
    import torch.nn.functional as F

    from semtok.quantizers.online_codebook import OnlineCodebook

    torch.manual_seed(0)
    codebook = OnlineCodebook(8, 4)
    x = F.normalize(torch.randn(32, 4), dim=-1)
    codes, ids, aux = codebook(x)
    assert codes.dtype == torch.float32 and ids.dtype == torch.int64
    assert torch.equal(codes, codebook.codes()[ids]) and torch.allclose(codes.norm(dim=1), torch.ones(32))
    assert torch.equal(ids, (x @ codebook.codes().t()).argmax(dim=1))
    assert torch.equal(aux["counts"], torch.bincount(ids, minlength=8).float())
    # the loss and its gradient are mse(code, x) on the normalised weight, as before the triple
    expected = F.mse_loss(F.embedding(ids, F.normalize(codebook.weight.float(), dim=-1)), x)
    assert torch.equal(aux["loss"], expected)
    (grad,) = torch.autograd.grad(expected, codebook.weight)
    aux["loss"].backward()
    assert torch.equal(codebook.weight.grad, grad)
    # the codes carry that gradient too: d sum(codes) / d weight is non-zero
    codebook.weight.grad = None
    codebook(x)[0].sum().backward()
    assert codebook.weight.grad is not None and codebook.weight.grad.abs().sum() > 0
