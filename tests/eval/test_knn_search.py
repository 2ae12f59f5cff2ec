"""Blocked exact kNN search (torch and faiss) equals the unblocked search, tie rule, and an overflow-safe vote.

* blocked == unblocked, bit for bit (similarities and indices), for both backends, on random and on tie-heavy inputs,
  with small blocks forced and uneven last blocks;
* the tie rule (decreasing similarity, then increasing train index; a tie at the k-th place keeps lower indices) on
  exactly representable inputs, identical on both backends;
* the vote at the default T = 0.07 is bit-identical to the previous (DINO) arithmetic for every k, ties included;
* small temperatures (0.005, 1e-4) vote in the shifted form: sensible accuracy, equal to a float64 reference;
* non-finite temperatures, NaN features and NaN similarities are refused with one clear line.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from satbench.errors import ProtocolError, SatbenchError
from satbench.eval.knn_vote import (
    EXP_OVERFLOW, EXP_UNDERFLOW, knn_classify, knn_vote, knn_vote_form, knn_vote_with_form, topk_accuracy
)
from satbench.eval.knn_search import TORCH_TRAIN_ALIGN, _faiss_query_blocks, knn_search, l2_normalize
from support.builders import tiny_satdino


def legacy_knn_vote(sims, indices, train_labels, num_classes, k, temperature, chunk=1024):
    """satbench's knn_vote before the overflow fix (commit 74b900d), verbatim: DINO's knn_classifier arithmetic."""
    preds = []
    for i in range(0, sims.shape[0], chunk):
        d = sims[i:i + chunk, :k]
        j = indices[i:i + chunk, :k]
        b = d.shape[0]
        retrieved = torch.gather(train_labels.view(1, -1).expand(b, -1), 1, j)
        one_hot = torch.zeros(b * k, num_classes)
        one_hot.scatter_(1, retrieved.reshape(-1, 1), 1)
        weights = d.clone().div_(temperature).exp_()
        probs = torch.sum(torch.mul(one_hot.view(b, -1, num_classes), weights.view(b, -1, 1)), 1)
        _, order = probs.sort(1, True)
        preds.append(order)
    return torch.cat(preds) if preds else torch.zeros(0, num_classes, dtype=torch.int64)


def clustered(n_train: int, n_query: int, d: int, classes: int, noise: float = 1.0, seed: int = 0):
    """Real-feature-like data: class centres + Gaussian noise, L2-normalised rows, labels."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, d, generator=g)
    ytr = torch.randint(0, classes, (n_train,), generator=g)
    yte = torch.randint(0, classes, (n_query,), generator=g)
    xtr = centres[ytr] + noise * torch.randn(n_train, d, generator=g)
    xte = centres[yte] + noise * torch.randn(n_query, d, generator=g)
    return l2_normalize(xtr), ytr, l2_normalize(xte), yte


def exact_ties(n_train: int, n_query: int, d: int = 64, distinct: int = 6, seed: int = 0):
    """Tie-heavy rows with entries in {-1/8, 0, 1/8}: every inner product is a multiple of 1/64, exact in float32 in
    any summation order, so equal similarities are truly equal on every backend and block shape."""
    rng = np.random.default_rng(seed)
    base = rng.integers(-1, 2, size=(distinct, d)).astype(np.float32) / 8
    xtr = torch.from_numpy(base[rng.integers(0, distinct, n_train)])
    xte = torch.from_numpy(base[rng.integers(0, distinct, n_query)])
    return xtr, xte


def rule_reference(xtr: torch.Tensor, xte: torch.Tensor, k: int):
    """The tie rule by brute force in float64 (exact for :func:`exact_ties` inputs)."""
    s = xte.double().numpy() @ xtr.double().numpy().T
    order = np.stack([np.lexsort((np.arange(s.shape[1]), -row))[:k] for row in s])
    return torch.from_numpy(np.take_along_axis(s, order, 1).astype(np.float32)), torch.from_numpy(order)


def assert_same(a, b):
    assert torch.equal(a[1], b[1]), "neighbour indices differ"
    assert torch.equal(a[0], b[0]), "similarities differ"


pytestmark = pytest.mark.usefixtures("one_thread")

BIG = 1 << 40  # a budget that never splits: the unblocked search


# ---------------------------------------------------------------- torch: blocked == unblocked


@pytest.mark.parametrize("chunk", [1024, 97, 3])
def test_torch_blocked_equals_unblocked_random(chunk):
    xtr, _, xte, _ = clustered(5000, 300, 64, 10)
    info_u, info_b = {}, {}
    ref = knn_search(xtr, xte, 30, backend="torch", chunk=chunk, max_block_bytes=BIG, info=info_u)
    # the smallest budget: train blocks of one alignment unit, 5000 = 4 x 1024 + 904 (uneven last block)
    got = knn_search(xtr, xte, 30, backend="torch", chunk=chunk, max_block_bytes=1, info=info_b)
    assert info_u["train_block"] == 5000 and info_b["train_block"] == TORCH_TRAIN_ALIGN
    assert info_b["blocks"] == math.ceil(300 / chunk) * 5
    assert_same(got, ref)
    mid = knn_search(xtr, xte, 30, backend="torch", chunk=chunk, max_block_bytes=min(300, chunk) * 4 * 2048)
    assert_same(mid, ref)  # blocks of 2048, 2048, 904


def test_torch_k_larger_than_last_block_and_k_equal_to_n_train():
    xtr, _, xte, _ = clustered(2100, 50, 32, 5)  # blocks 1024, 1024, 52 < k
    ref = knn_search(xtr, xte, 300, backend="torch", max_block_bytes=BIG)
    assert_same(knn_search(xtr, xte, 300, backend="torch", max_block_bytes=1), ref)
    full = knn_search(xtr, xte, 2100, backend="torch", max_block_bytes=1)
    assert_same((full[0][:, :300], full[1][:, :300]), ref)
    assert torch.equal(full[1].sort(dim=1).values, torch.arange(2100).expand(50, -1))


# ---------------------------------------------------------------- tie rule on both backends


@pytest.mark.parametrize("k", [1, 5, 99, 100, 201, 700])
def test_tie_rule_both_backends_blocked_and_unblocked(k):
    xtr, xte = exact_ties(2600, 60)
    ref = rule_reference(xtr, xte, k)
    for backend in ("torch", "faiss"):
        for budget in (BIG, 1):
            got = knn_search(xtr, xte, k, backend=backend, max_block_bytes=budget)
            assert_same(got, ref)


def test_tie_rule_within_one_torch_block_at_the_boundary():
    # 40 identical train rows, k = 7: topk alone may keep any 7 of them; the rule keeps rows 0..6, in order
    xtr = torch.ones(40, 8) / 8
    xte = torch.ones(3, 8) / 8
    for backend in ("torch", "faiss"):
        s, i = knn_search(xtr, xte, 7, backend=backend)
        assert i.tolist() == [list(range(7))] * 3 and bool((s == s[0, 0]).all())


# ---------------------------------------------------------------- faiss: blocked == unblocked


def test_faiss_query_blocks_follow_faiss_internal_blocks():
    # faiss 1.15: BLAS blocks of 4096 queries; the sequential scan for nx * d < 128000
    assert _faiss_query_blocks(10292, 64, 4096) == [(0, 4096), (4096, 8192), (8192, 10292)]
    assert _faiss_query_blocks(10292, 64, 5000) == [(0, 4096), (4096, 8192), (8192, 10292)]
    assert _faiss_query_blocks(5096, 64, 1) == [(0, 5096)]  # a 1000-row tail would take the sequential path
    assert _faiss_query_blocks(9000, 384, 8192) == [(0, 8192), (8192, 9000)]
    assert _faiss_query_blocks(300, 384, 1) == [(0, 300)]


def test_faiss_blocked_equals_unblocked_random():
    xtr, _, xte, _ = clustered(2000, 10292, 64, 10, seed=1)
    info_u, info_b = {}, {}
    ref = knn_search(xtr, xte, 20, backend="faiss", max_block_bytes=BIG, info=info_u)
    got = knn_search(xtr, xte, 20, backend="faiss", max_block_bytes=1, info=info_b)
    assert info_u["blocks"] == 1 and info_b["blocks"] == 3  # 4096 + 4096 + 2100 (uneven)
    assert_same(got, ref)


@pytest.fixture
def small_faiss_blocks():
    """faiss's internal BLAS query block set to 256 rows (threshold 1000): many small blocks at test sizes."""
    import faiss

    old = faiss.cvar.distance_compute_blas_query_bs, faiss.cvar.distance_compute_blas_threshold
    faiss.cvar.distance_compute_blas_query_bs, faiss.cvar.distance_compute_blas_threshold = 256, 1000
    yield
    faiss.cvar.distance_compute_blas_query_bs, faiss.cvar.distance_compute_blas_threshold = old


@pytest.mark.parametrize("k", [10, 150])
def test_faiss_many_small_uneven_blocks(small_faiss_blocks, k):
    xtr, _, xte, _ = clustered(3000, 3000, 48, 10, seed=2)
    info = {}
    ref = knn_search(xtr, xte, k, backend="faiss", max_block_bytes=BIG)
    got = knn_search(xtr, xte, k, backend="faiss", max_block_bytes=1, info=info)
    assert info["blocks"] == 12  # 11 x 256 + 184
    assert_same(got, ref)
    ties_tr, ties_te = exact_ties(1500, 700, seed=3)
    assert_same(knn_search(ties_tr, ties_te, k, backend="faiss", max_block_bytes=1), rule_reference(ties_tr, ties_te, k))


def test_faiss_long_ties_are_searched_again_in_their_own_slice(small_faiss_blocks):
    """Random features plus 40 copies of one train row near a group of queries: more than TIE_MARGIN equal
    similarities straddle the k-th place, so those rows are searched again (in their own 256-row faiss slice);
    the result must equal the tie rule applied to faiss's own similarities of the whole unblocked call."""
    import faiss

    xtr, _, xte, _ = clustered(3000, 1500, 48, 10, seed=10)
    u = xtr[7].clone()
    at = torch.arange(100, 2900, 70)  # 40 copies spread over the train set
    xtr[at] = u
    xte[300:340] = l2_normalize(u + 0.05 * torch.randn(40, 48, generator=torch.Generator().manual_seed(0)))
    k = 12
    calls = []
    real_knn = faiss.knn

    def counting_knn(xq, xb, kk, **kw):
        calls.append((xq.shape[0], kk))
        return real_knn(xq, xb, kk, **kw)

    faiss.knn = counting_knn
    try:
        got = knn_search(xtr, xte, k, backend="faiss", max_block_bytes=1)
        ref = knn_search(xtr, xte, k, backend="faiss", max_block_bytes=BIG)
    finally:
        faiss.knn = real_knn
    assert any(kk > k + 16 for _, kk in calls)  # the second search happened
    assert all(n <= 256 for n, kk in calls[:len(calls) // 2] if kk > k + 16)  # ... on slices, not the whole set
    s, i = real_knn(xte.numpy(), xtr.numpy(), 3000, metric=faiss.METRIC_INNER_PRODUCT)
    full = np.empty_like(s)
    np.put_along_axis(full, i, s, 1)
    order = np.stack([np.lexsort((np.arange(3000), -row))[:k] for row in full])
    assert torch.equal(ref[1], torch.from_numpy(order))
    assert_same(got, ref)
    # all neighbours are copies of u (faiss's BLAS may give copies in different database blocks an ulp more or less)
    assert bool(torch.isin(got[1][300:340], torch.cat([torch.tensor([7]), at])).all())


def test_faiss_and_torch_agree_on_random_features():
    xtr, _, xte, _ = clustered(3000, 200, 96, 10, seed=4)
    f = knn_search(xtr, xte, 50, backend="faiss", max_block_bytes=1)
    t = knn_search(xtr, xte, 50, backend="torch", max_block_bytes=1)
    assert torch.equal(f[1], t[1]) and torch.allclose(f[0], t[0], atol=1e-6)


# ---------------------------------------------------------------- vote: official bit identity, shifted at small T


def test_vote_official_form_is_bit_identical_to_the_previous_arithmetic_for_every_k():
    xtr, ytr, xte, _ = clustered(1000, 150, 384, 20, noise=2.0, seed=5)
    xtr = torch.cat([xtr, xtr[:150]])  # duplicated train rows: exactly tied neighbours of different positions
    ytr = torch.cat([ytr, ytr[:150]])
    sims, idx = knn_search(xtr, xte, 100, backend="faiss")
    assert bool((sims[:, 1:] == sims[:, :-1]).any())  # ties are present
    for k in range(1, 101):
        new, form = knn_vote_with_form(sims, idx, ytr, 20, k, 0.07)
        assert form == "official"
        assert torch.equal(new, legacy_knn_vote(sims, idx, ytr, 20, k, 0.07)), k
    for k in (7, 100):  # several chunks
        assert torch.equal(knn_vote(sims, idx, ytr, 20, k, 0.07, chunk=64), legacy_knn_vote(sims, idx, ytr, 20, k, 0.07, chunk=64))
    # tied class scores (equal weights, two classes): the tied classes keep the old order too
    s = torch.full((4, 6), 0.5)
    i = torch.arange(24).view(4, 6) % 12
    y = torch.arange(12) % 3
    assert torch.equal(knn_vote(s, i, y, 3, 6, 0.07), legacy_knn_vote(s, i, y, 3, 6, 0.07))


def shifted_reference(sims, idx, ytr, num_classes, k, temperature):
    """Argmax of sum_j one_hot(y_j) exp((s_j - max s) / T), in float64 with scatter_add (independent of the code)."""
    d = sims[:, :k].double()
    w = torch.exp((d - d.max(dim=1, keepdim=True).values) / temperature)
    scores = torch.zeros(d.shape[0], num_classes, dtype=torch.float64).scatter_add_(1, ytr[idx[:, :k]], w)
    return scores.argmax(dim=1)


@pytest.mark.parametrize("temperature", [0.005, 1e-4])
def test_small_temperature_votes_in_shifted_form(temperature):
    xtr, ytr, xte, yte = clustered(1500, 400, 64, 12, noise=0.8, seed=6)
    sims, idx = knn_search(xtr, xte, 100, backend="faiss")
    chance = 100 / 12
    for k in (10, 20, 100):
        legacy_w = sims[:, :k].clone().div_(temperature).exp_()
        assert not bool(torch.isfinite(legacy_w).all())  # the old vote overflowed here
        old_top1 = topk_accuracy(legacy_knn_vote(sims, idx, ytr, 12, k, temperature), yte, k)[0]
        ranking, form = knn_vote_with_form(sims, idx, ytr, 12, k, temperature)
        assert form == "shifted" and knn_vote_form(sims, k, temperature) == "shifted"
        assert torch.equal(ranking[:, 0], shifted_reference(sims, idx, ytr, 12, k, temperature))
        top1 = topk_accuracy(ranking, yte, k)[0]
        nn1 = topk_accuracy(knn_vote(sims, idx, ytr, 12, 1, 0.07), yte, 1)[0]
        assert top1 > 3 * chance and top1 >= nn1 - 5, (top1, nn1)
        assert old_top1 < top1 - 20, (old_top1, top1)  # the overflow gave near-chance accuracy


def test_knn_classify_reports_the_vote_form_per_k():
    xtr, ytr, xte, yte = clustered(800, 100, 32, 5, seed=7)
    for backend in ("faiss", "torch"):
        r = knn_classify(xtr, ytr.tolist(), xte, yte.tolist(), [1, 20], 0.07, 5, backend=backend)
        assert r.vote == {1: "official", 20: "official"} and r.search["backend"] == backend
        s = knn_classify(xtr, ytr, xte, yte, [1, 20], 0.005, 5, backend=backend)
        assert s.vote == {1: "shifted", 20: "shifted"} and s.top1[20] > 50


def test_vote_form_depends_on_k_near_the_limit():
    # max |sim| = 1 (queries are train rows): a = 1/T = 84 is within the limit for k = 1 (86.3), not for k = 200 (82.4)
    xtr, ytr, _, _ = clustered(400, 10, 16, 4, seed=11)
    r = knn_classify(xtr, ytr, xtr[:50], ytr[:50], [1, 200], 1 / 84, 4)
    assert r.vote == {1: "official", 200: "shifted"} and r.top1[1] == 100.0


def test_vote_form_threshold():
    s = torch.tensor([[1.0, 0.5]])
    assert knn_vote_form(s, 2, 0.07) == "official"
    limit = min(EXP_OVERFLOW - math.log(2), -EXP_UNDERFLOW) - 1.0
    assert knn_vote_form(s, 2, 1.0 / (limit - 0.01)) == "official"
    assert knn_vote_form(s, 2, 1.0 / (limit + 0.01)) == "shifted"
    assert knn_vote_form(-s, 2, 0.0105) == "shifted"  # exp(-95): subnormal float32 weights
    with pytest.raises(SatbenchError, match="cannot be used here"):
        knn_vote_with_form(s, torch.tensor([[0, 1]]), torch.tensor([0, 1]), 2, 2, 0.005, form="official")


# ---------------------------------------------------------------- refusals: one clear line


@pytest.mark.parametrize("temperature", [0.0, -0.07, math.nan, math.inf, -math.inf])
def test_bad_temperature_is_refused(temperature):
    s, i, y = torch.tensor([[0.9, 0.1]]), torch.tensor([[0, 1]]), torch.tensor([0, 1])
    with pytest.raises(ProtocolError, match="temperature must be a finite number > 0") as e:
        knn_vote(s, i, y, 2, 2, temperature)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("backend", ["faiss", "torch"])
@pytest.mark.parametrize("which", ["train", "query"])
def test_nan_features_are_refused(backend, which):
    xtr, ytr, xte, yte = clustered(200, 20, 16, 3, seed=8)
    (xtr if which == "train" else xte)[5, 3] = math.nan
    with pytest.raises(SatbenchError, match=f"the {which} features contain NaN or inf in 1 of .* rows \\(first: row 5\\)") as e:
        knn_classify(xtr, ytr, xte, yte, [5], 0.07, 3, backend=backend)
    assert "\n" not in str(e.value)


def test_nan_similarities_are_refused():
    s = torch.tensor([[0.9, math.nan]])
    with pytest.raises(SatbenchError, match="similarities of 1 of 1 queries are NaN or inf"):
        knn_vote(s, torch.tensor([[0, 1]]), torch.tensor([0, 1]), 2, 2, 0.07)


def tiny_loaded():
    """A depth-2 ViT-Tiny/16 SatDINO backbone (random, seeded 0), as in test_knn.py."""
    return tiny_satdino()


def test_run_knn_records_vote_form_and_refuses_infinite_temperature(tmp_path):
    from satbench.eval.cache import FeatureCache
    from satbench.data.scene import open_scene_dataset
    from satbench.eval.task_knn import run_knn
    from satbench.config.protocols import load_protocol
    ds = open_scene_dataset("ucm-mini")
    base = load_protocol("satdino-knn-v1").with_overrides(scales=[0.125], k=[1, 20], k_report=20)
    with pytest.raises(ProtocolError, match="temperature must be a finite number > 0, got inf"):
        run_knn(tiny_loaded(), ds, base.with_overrides(temperature=math.inf), device="cpu", progress=False)
    cache = FeatureCache(tmp_path / "c")
    rec = run_knn(tiny_loaded(), ds, base, device="cpu", cache=cache, progress=False, num_workers=0)
    assert rec["extra"]["vote"] == "official" and "vote_forms" not in rec["extra"]
    assert rec["extra"]["search"]["backend"] == "faiss" and rec["extra"]["search"]["blocks"] == 1
    hot = run_knn(tiny_loaded(), ds, base.with_overrides(temperature=0.005), device="cpu", cache=cache,
                  progress=False, num_workers=0, search_block_bytes=1)
    assert hot["extra"]["vote"] == "shifted"
    assert hot["summary"]["top1_avg"] > 2 * 100 / 21  # not chance (the overflowed vote gave about chance)
    # k = 1 has a single neighbour: the vote form cannot change its prediction
    assert hot["metrics"]["per_scale"][0]["k"]["1"] == rec["metrics"]["per_scale"][0]["k"]["1"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_features_stay_on_the_device():
    xtr, ytr, xte, yte = clustered(3000, 500, 64, 10, seed=9)
    ref = knn_search(xtr, xte, 40, backend="torch", max_block_bytes=BIG)
    info = {}
    got = knn_search(xtr.cuda(), xte.cuda(), 40, backend="torch", max_block_bytes=1, info=info)
    assert info["device"].startswith("cuda") and got[0].device.type == "cpu"
    assert (got[1] == ref[1]).float().mean() > 0.99
    unb = knn_search(xtr.cuda(), xte.cuda(), 40, backend="torch", max_block_bytes=BIG)
    assert_same(got, unb)
    r = knn_classify(xtr.cuda(), ytr.cuda(), xte.cuda(), yte.cuda(), [20], 0.07, 10, backend="torch")
    assert r.search["device"].startswith("cuda") and r.vote[20] == "official"
