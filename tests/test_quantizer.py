"""VectorQuantizer and k-means: shapes, gradients, init, EMA, dead-code restart, precision, state."""

import pytest
import torch
import torch.nn.functional as F

from semtok.errors import SemtokError
from semtok.metrics.codebook import codebook_stats
from semtok.quantizers import VectorQuantizer, VectorQuantizerConfig, kmeans, nearest_code


def clustered(n: int, centers: torch.Tensor, noise: float, seed: int) -> torch.Tensor:
    """``n`` points around random rows of ``centers`` (seeded, independent of the global RNG)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(centers.shape[0], (n,), generator=g)
    return centers[ids] + noise * torch.randn(n, centers.shape[1], generator=g)


def set_codebook(vq: VectorQuantizer, codes: torch.Tensor) -> None:
    with torch.no_grad():
        vq.codebook.copy_(codes)
        vq.ema_sum.copy_(codes)
        vq.ema_count.fill_(1.0)
        vq.initialized.fill_(True)


@pytest.mark.parametrize("distance", ["cosine", "l2"])
def test_triple_shapes_and_dtypes(distance):
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 8, distance=distance)
    for shape in [(2, 3, 4, 8), (10, 8)]:
        z = torch.randn(shape)
        q, ids, aux = vq(z)
        assert q.shape == z.shape and q.dtype == z.dtype
        assert ids.shape == z.shape[:-1] and ids.dtype == torch.int64
        assert int(ids.min()) >= 0 and int(ids.max()) < 16
        assert {"loss", "commit_loss", "usage", "perplexity", "restarted"} <= set(aux)
        assert aux["loss"].ndim == 0 and aux["loss"].requires_grad is False  # z has no grad here
        assert 0.0 < float(aux["usage"]) <= 1.0 and 1.0 <= float(aux["perplexity"]) <= 16.0
        # forward values are the code vectors (eval: the codebook does not move after the assignment)
        vq.eval()
        q, ids, _ = vq(z)
        torch.testing.assert_close(q, vq.lookup(ids))
        vq.train()
    if distance == "cosine":
        torch.testing.assert_close(vq.codebook.norm(dim=1), torch.ones(16))


@pytest.mark.parametrize("distance", ["cosine", "l2"])
def test_straight_through_gradient(distance):
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 8, distance=distance)
    z = torch.randn(4, 5, 8, requires_grad=True)
    q, _, aux = vq(z)
    q.sum().backward()
    if distance == "l2":
        torch.testing.assert_close(z.grad, torch.ones_like(z))  # identity
    else:  # identity through the normalisation of z
        z2 = z.detach().clone().requires_grad_()
        F.normalize(z2, dim=-1).sum().backward()
        torch.testing.assert_close(z.grad, z2.grad)
    z.grad = None
    _, _, aux = vq(z)
    aux["loss"].backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


@pytest.mark.parametrize("distance", ["cosine", "l2"])
def test_kmeans_init_beats_random_init(distance):
    centers = 3 * torch.randn(16, 8, generator=torch.Generator().manual_seed(9))
    z = clustered(512, centers, 0.05, seed=1)
    losses = {}
    for init in (True, False):
        torch.manual_seed(0)
        vq = VectorQuantizer(16, 8, distance=distance, kmeans_init=init).train()
        _, _, aux = vq(z)  # first training step: assignment uses the initial codebook
        assert bool(vq.initialized)
        losses[init] = float(aux["commit_loss"])
    assert losses[True] < 0.3 * losses[False]


def inertia(x: torch.Tensor, cents: torch.Tensor) -> float:
    return float(torch.cdist(x, cents).min(dim=1).values.pow(2).sum())


def test_kmeans_function():
    centers = 5 * torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    x = clustered(400, centers, 0.3, seed=2)
    results = {}
    for iters in (0, 1, 20):
        torch.manual_seed(0)
        results[iters] = kmeans(x, 8, iters=iters, distance="l2")
    cents, counts = results[20]
    assert cents.shape == (8, 3) and counts.shape == (8,) and int(counts.sum()) == 400
    assert inertia(x, cents) < inertia(x, results[1][0]) < inertia(x, results[0][0])
    # converged: each centroid is the mean of the points nearest to it
    ids = nearest_code(x, cents, "l2")
    means = torch.stack([x[ids == k].mean(0) for k in range(8)])
    torch.testing.assert_close(cents, means, atol=1e-4, rtol=1e-4)
    # fewer vectors than clusters: padded with noisy copies, centroids all distinct
    few, _ = kmeans(x[:5], 12, iters=3, distance="cosine")
    assert few.shape == (12, 3) and torch.isfinite(few).all()
    assert torch.unique(few, dim=0).shape[0] == 12
    torch.testing.assert_close(few.norm(dim=1), torch.ones(12))
    # same seed, same result
    torch.manual_seed(5)
    a, _ = kmeans(x, 6, iters=4)
    torch.manual_seed(5)
    b, _ = kmeans(x, 6, iters=4)
    assert torch.equal(a, b)


def test_ema_update_matches_hand_computation_l2():
    vq = VectorQuantizer(2, 2, distance="l2", ema_decay=0.5, dead_code_steps=0, eps=1e-5).train()
    set_codebook(vq, torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [9.0, 10.0]])
    _, ids, _ = vq(x)
    assert ids.tolist() == [0, 0, 1]
    count = 0.5 * torch.tensor([1.0, 1.0]) + 0.5 * torch.tensor([2.0, 1.0])  # [1.5, 1.0]
    summ = 0.5 * torch.tensor([[0.0, 0.0], [10.0, 10.0]]) + 0.5 * torch.tensor([[1.0, 1.0], [9.0, 10.0]])
    n, eps = count.sum(), 1e-5
    expected = summ / ((count + eps) / (n + 2 * eps) * n)[:, None]
    torch.testing.assert_close(vq.ema_count, count)
    torch.testing.assert_close(vq.ema_sum, summ)
    torch.testing.assert_close(vq.codebook, expected)
    # each code moved toward the mean of its assigned vectors
    means = torch.tensor([[0.5, 0.5], [9.0, 10.0]])
    before = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    assert ((vq.codebook - means).norm(dim=1) < (before - means).norm(dim=1)).all()


def test_ema_update_matches_hand_computation_cosine():
    vq = VectorQuantizer(2, 2, distance="cosine", ema_decay=0.9, dead_code_steps=0).train()
    set_codebook(vq, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    x = torch.tensor([[2.0, 1.0], [3.0, -1.0], [0.0, 5.0]])
    _, ids, _ = vq(x)
    assert ids.tolist() == [0, 0, 1]
    xn = F.normalize(x, dim=1)
    summ = 0.9 * torch.eye(2) + 0.1 * torch.stack([xn[0] + xn[1], xn[2]])
    torch.testing.assert_close(vq.ema_sum, summ)
    torch.testing.assert_close(vq.codebook, F.normalize(summ, dim=1))


def test_dead_code_restart_reseeds_unused_codes():
    torch.manual_seed(0)
    centers = 3 * torch.randn(16, 4, generator=torch.Generator().manual_seed(9))
    vq = VectorQuantizer(16, 4, distance="l2", dead_code_steps=3).train()
    vq(clustered(256, centers, 0.05, seed=3))  # k-means init on all 16 clusters
    narrow = clustered(256, centers[:2], 0.5, seed=4)  # data near only 2 of them
    restarted, usage = [], []
    for _ in range(5):
        _, _, aux = vq(narrow)
        restarted.append(aux["restarted"])
        usage.append(float(aux["usage"]))
    assert sum(restarted[:2]) == 0 and restarted[2] > 0  # dead after 3 unused steps (incl. the init step)
    assert usage[-1] > usage[0]
    assert (vq.steps_unused < 3).all()
    # restarted codes sit on (or, after the next EMA step, near) the narrow data
    assert torch.cdist(vq.codebook, centers[:2]).min(dim=1).values.max() < 3.0

    off = VectorQuantizer(16, 4, distance="l2", dead_code_steps=0).train()
    off(clustered(256, centers, 0.05, seed=3))
    assert all(off(narrow)[2]["restarted"] == 0 for _ in range(5))


def test_bf16_autocast_runs_fp32_math():
    torch.manual_seed(0)
    vq = VectorQuantizer(32, 8, distance="l2").train()
    z = (300 * torch.randn(64, 8)).bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        q, ids, aux = vq(z)
        aux["loss"].backward()
    assert q.dtype == torch.bfloat16 and aux["loss"].dtype == torch.float32
    assert torch.isfinite(q.float()).all() and torch.isfinite(aux["loss"])
    assert torch.isfinite(z.grad.float()).all()
    assert vq.codebook.dtype == torch.float32 and torch.isfinite(vq.codebook).all()
    # the assignment equals an fp32 computation on the same (bf16-valued) input
    vq.eval()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, ids_ac, _ = vq(z)
    _, ids_fp32, _ = vq(z.detach().float())
    assert torch.equal(ids_ac, ids_fp32)


@pytest.mark.parametrize("distance", ["cosine", "l2"])
def test_chunked_assignment_equals_unchunked(distance):
    torch.manual_seed(0)
    x = torch.randn(120, 8)
    codes = torch.randn(50, 8)
    if distance == "cosine":
        x, codes = F.normalize(x, dim=1), F.normalize(codes, dim=1)
    full = nearest_code(x, codes, distance, chunk_size=10_000)
    assert torch.equal(nearest_code(x, codes, distance, chunk_size=13), full)
    if distance == "l2":
        assert torch.equal(torch.cdist(x, codes).argmin(dim=1), full)
    else:
        assert torch.equal((x @ codes.t()).argmax(dim=1), full)
    # a whole training step with small chunks gives the same codebook
    books = []
    for chunk in (None, 13):
        torch.manual_seed(1)
        vq = VectorQuantizer(50, 8, distance=distance, chunk_size=chunk, kmeans_iters=3).train()
        for _ in range(2):
            vq(x)
        books.append(vq.codebook.clone())
    torch.testing.assert_close(books[0], books[1])


def test_eval_mode_changes_no_buffers():
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4).eval()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    vq(torch.randn(100, 4))
    assert not bool(vq.initialized)  # no k-means in eval
    vq.train()
    vq(torch.randn(100, 4))
    vq.eval()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    _, _, aux = vq(torch.randn(100, 4))
    assert aux["restarted"] == 0
    for k, v in vq.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_state_dict_round_trip_and_determinism():
    centers = 3 * torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    batches = [clustered(64, centers, 0.2, seed=s) for s in range(4)]

    def run(steps):
        torch.manual_seed(0)
        vq = VectorQuantizer(8, 4, dead_code_steps=2).train()
        for b in batches[:steps]:
            vq(b)
        return vq

    a = run(3)
    torch.manual_seed(123)
    b = VectorQuantizer.from_config(VectorQuantizerConfig(num_codes=8, code_dim=4, dead_code_steps=2))
    b.load_state_dict(a.state_dict())
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    a.eval()
    b.eval()
    assert torch.equal(a(batches[3])[1], b(batches[3])[1])
    # continuing training from the loaded state does not re-run k-means; same seed -> same codebook
    a.train()
    b.train()
    torch.manual_seed(7)
    a(batches[3])
    torch.manual_seed(7)
    b(batches[3])
    assert torch.equal(a.codebook, b.codebook)
    assert torch.equal(run(4).codebook, run(4).codebook)


def test_usage_stats_and_errors():
    stats = codebook_stats(torch.tensor([2, 2, 0, 0]), as_tensors=True)
    assert float(stats["usage"]) == 0.5
    assert float(stats["perplexity"]) == pytest.approx(2.0)
    vq = VectorQuantizer(4, 2)
    s = vq.codebook_stats(torch.tensor([[0, 1], [2, 3]]))
    assert float(s["usage"]) == 1.0 and float(s["perplexity"]) == pytest.approx(4.0)
    assert float(codebook_stats(torch.zeros(4), as_tensors=True)["perplexity"]) == pytest.approx(1.0)
    vq.train()
    vq(torch.randn(16, 2))
    _, ids, aux = vq(torch.zeros(0, 2))  # an empty batch is harmless
    assert ids.shape == (0,) and float(aux["loss"]) == 0.0 and torch.isfinite(vq.codebook).all()
    with pytest.raises(SemtokError, match="distance"):
        VectorQuantizer(4, 2, distance="dot")
    with pytest.raises(SemtokError, match="last dim"):
        vq(torch.randn(3, 5))


def _every_quantizer() -> dict[str, tuple[torch.nn.Module, int]]:
    """One of each quantizer (name -> (module, input dim)), seeded."""
    from semtok.quantizers import FSQ, ClusterCodebook, OnlineCodebook

    torch.manual_seed(0)
    return {
        "vq-train": (VectorQuantizer(16, 4, dead_code_steps=1).train(), 4),
        "vq-eval": (VectorQuantizer(16, 4).eval(), 4),
        "fsq": (FSQ([3, 4]), 2),
        "cluster": (ClusterCodebook(16, 4), 4),
        "online": (OnlineCodebook(16, 4), 4),
    }


def test_every_quantizer_returns_the_documented_aux():
    from semtok.quantizers import AUX_KEYS

    extras = {"cluster": {"cosine"}}  # the documented quantizer-specific keys
    for name, (quantizer, dim) in _every_quantizer().items():
        z = F.normalize(torch.randn(40, dim), dim=-1)
        q, ids, aux = quantizer(z)
        assert q.shape == z.shape and ids.shape == (40,) and ids.dtype == torch.int64, name
        assert set(aux) == set(AUX_KEYS) | extras.get(name, set()), name
        for key in ("loss", "commit_loss", "usage", "perplexity", "entropy_nats"):
            assert aux[key].ndim == 0 and aux[key].dtype == torch.float32, (name, key)
        assert not aux["commit_loss"].requires_grad, name
        assert aux["codes_used"].ndim == 0 and aux["codes_used"].dtype == torch.int64, name
        assert isinstance(aux["restarted"], int), name
        counts = aux["counts"]
        assert counts.shape == (quantizer.num_codes,) and counts.dtype == torch.float32, name
        assert torch.equal(counts, torch.bincount(ids, minlength=quantizer.num_codes).float()), name
        # the statistics are codebook_stats of the counts, and agree with the host (fp64) numbers
        expected = codebook_stats(counts, as_tensors=True)
        host = codebook_stats(counts)
        for key in ("usage", "perplexity", "entropy_nats", "codes_used"):
            assert torch.equal(aux[key], expected[key]), (name, key)
            assert float(aux[key]) == pytest.approx(host[key], rel=1e-5), (name, key)
        if hasattr(quantizer, "codebook_stats"):
            method = quantizer.codebook_stats(ids)
            assert all(torch.equal(method[k], expected[k]) for k in expected), name


def test_empty_histogram_convention_everywhere():
    """An empty histogram: usage 0, entropy 0, perplexity exp(0) = 1, codes_used 0, for every caller."""
    empty = {"usage": 0.0, "perplexity": 1.0, "entropy_nats": 0.0, "codes_used": 0}
    for counts in (torch.zeros(4), torch.zeros(4, dtype=torch.long)):
        host = codebook_stats(counts)
        assert host == empty and all(type(host[k]) is type(v) for k, v in empty.items())
        assert {k: v.item() for k, v in codebook_stats(counts, as_tensors=True).items()} == empty
    for name, (quantizer, dim) in _every_quantizer().items():
        if name == "vq-train":
            quantizer(torch.randn(32, dim))  # initialise first: k-means needs vectors
        _, ids, aux = quantizer(torch.zeros(0, dim))
        assert ids.shape == (0,), name
        assert {k: aux[k].item() for k in empty} == empty, name
        assert float(aux["counts"].sum()) == 0.0, name
        if hasattr(quantizer, "codebook_stats"):
            got = quantizer.codebook_stats(torch.zeros(0, dtype=torch.long))
            assert {k: v.item() for k, v in got.items()} == empty, name
