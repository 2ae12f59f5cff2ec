"""satbench.stats: bootstrap intervals against independent computations, coverage, McNemar against hand tables and
scipy, Holm, seed aggregates (GEO-Bench's IQM), nested stratified fractions, scale robustness, record helpers."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from satbench.errors import DataError, ResultsError
from satbench.stats import bootstrap as bs
from satbench.stats.bootstrap import BootstrapSpec
from satbench.stats.fields import classification_fields, knn_fields, segmentation_fields
from satbench.stats.fractions import fraction_count, fraction_subset, shots_subset, subset_sha256, subsets
from satbench.stats.robustness import robustness, summaries
from satbench.stats.seeds import aggregate
from satbench.stats.significance import binomial_two_sided_half, holm, mcnemar_exact

H = hashlib.sha256(b"val split of a fixed example").hexdigest()
H2 = hashlib.sha256(b"another split").hexdigest()


def independent_indices(split_sha256: str, seed: int, n: int, resamples: int) -> np.ndarray:
    """The resample matrix written out from the documented definition (not through satbench's generator code)."""
    rows = []
    for j in range(math.ceil(resamples / 64)):
        ss = np.random.SeedSequence(int(split_sha256, 16), spawn_key=(0xB007, seed, j))
        rows.append(np.random.Generator(np.random.PCG64(ss)).integers(0, n, size=(64, n), dtype=np.int64))
    return np.concatenate(rows)[:resamples]


def fixed_example(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(123)
    y = rng.integers(0, 5, n)
    pred = np.where(rng.random(n) < 0.7, y, (y + 1) % 5)
    return y, pred


# ---------------------------------------------------------------------------------------------------------------------
# Bootstrap
# ---------------------------------------------------------------------------------------------------------------------
def test_resample_matrix_is_the_documented_function_of_hash_and_seed():
    spec = BootstrapSpec(H, seed=3, resamples=150)  # two full blocks and a partial one
    ours = np.concatenate(list(bs.resample_indices(spec, 37)))
    assert ours.shape == (150, 37)
    np.testing.assert_array_equal(ours, independent_indices(H, 3, 37, 150))
    # the first R rows do not depend on how many resamples were asked for
    short = np.concatenate(list(bs.resample_indices(BootstrapSpec(H, seed=3, resamples=70), 37)))
    np.testing.assert_array_equal(short, ours[:70])
    counts = np.concatenate(list(bs.resample_counts(spec, 37)))
    np.testing.assert_array_equal(counts, np.stack([np.bincount(r, minlength=37) for r in ours]))


def test_resample_matrix_golden_values():
    """Pinned values: a numpy release that changed PCG64 / SeedSequence / Generator.integers streams would change every
    recorded interval, so it must fail here (and then be recorded as a new resample definition)."""
    first = next(bs.resample_indices(BootstrapSpec(H, seed=0, resamples=64), 1000))
    assert first[0, :8].tolist() == [694, 44, 958, 720, 147, 638, 87, 530]
    assert first[63, -4:].tolist() == [554, 827, 828, 673]
    third = list(bs.resample_indices(BootstrapSpec(H, seed=7, resamples=130), 420))[2]
    assert third.shape == (2, 420) and third[1, :6].tolist() == [24, 53, 172, 164, 350, 213]


def test_accuracy_interval_equals_an_independent_computation():
    y, pred = fixed_example()
    spec = BootstrapSpec(H, seed=0, resamples=2000)
    point, ci = bs.accuracy_interval(y, pred, spec)
    correct = (y == pred).astype(float)
    idx = independent_indices(H, 0, len(y), 2000)
    naive = np.array([correct[r].mean() * 100 for r in idx])
    lo, hi = np.percentile(naive, [2.5, 97.5])
    assert point == correct.sum() * 100.0 / len(y)
    assert ci[0] == pytest.approx(lo, abs=1e-9) and ci[1] == pytest.approx(hi, abs=1e-9)
    assert ci[0] < point < ci[1]
    # same split + seed -> the same interval; another seed or split -> other resamples
    assert bs.accuracy_interval(y, pred, spec) == (point, ci)
    c = correct
    same = bs.bootstrap_means(c, spec)
    np.testing.assert_array_equal(same, bs.bootstrap_means(c, BootstrapSpec(H, seed=0, resamples=2000)))
    assert not np.array_equal(same, bs.bootstrap_means(c, BootstrapSpec(H, seed=1, resamples=2000)))
    assert not np.array_equal(same, bs.bootstrap_means(c, BootstrapSpec(H2, seed=0, resamples=2000)))


def test_percentile_bootstrap_covers_a_known_binomial_within_monte_carlo_error():
    """1,000 synthetic test sets of n=300 images with true accuracy 0.85: the 95% interval must contain 0.85 in
    95% +- 3.5 Monte Carlo standard errors (0.0069) of them (the percentile bootstrap of a proportion at this n
    covers ~94.5%)."""
    p, n, sets = 0.85, 300, 1000
    rng = np.random.default_rng(2024)
    correct = (rng.random((n, sets)) < p).astype(float)  # columns = independent test sets
    spec = BootstrapSpec(H, seed=0, resamples=2000)
    lo, hi = bs.percentile_interval(bs.bootstrap_means(correct, spec), 0.95)
    coverage = float(np.mean((lo <= p) & (p <= hi)))
    se = math.sqrt(0.95 * 0.05 / sets)
    assert abs(coverage - 0.95) < 3.5 * se, coverage


def test_multiscale_average_resamples_images_once_and_averages_scales_inside():
    rng = np.random.default_rng(5)
    c = (rng.random((40, 4)) < [0.9, 0.8, 0.6, 0.3]).astype(float)
    spec = BootstrapSpec(H, resamples=300)
    got = bs.bootstrap_means(c, spec).mean(axis=1)
    idx = independent_indices(H, 0, 40, 300)
    naive = np.array([np.mean([c[r, s].mean() for s in range(4)]) for r in idx])
    np.testing.assert_allclose(got, naive, rtol=0, atol=1e-12)


def test_paired_difference_uses_the_same_images_for_both_models():
    rng = np.random.default_rng(9)
    a = (rng.random(80) < 0.8).astype(float)
    b = np.where(rng.random(80) < 0.9, a, 1 - a)
    spec = BootstrapSpec(H, resamples=500)
    diff, ci = bs.paired_difference(a, b, spec)
    idx = independent_indices(H, 0, 80, 500)
    naive = np.array([(a[r].mean() - b[r].mean()) * 100 for r in idx])
    assert diff == pytest.approx((a.mean() - b.mean()) * 100)
    np.testing.assert_allclose(ci, np.percentile(naive, [2.5, 97.5]), atol=1e-9)


def test_any_statistic_of_per_image_vectors():
    x = np.random.default_rng(1).normal(size=30)
    spec = BootstrapSpec(H, resamples=100)
    got = bs.bootstrap_statistic(lambda idx: np.median(x[idx]), 30, spec)
    naive = [np.median(x[r]) for r in independent_indices(H, 0, 30, 100)]
    np.testing.assert_allclose(got, naive)


def _miou_by_hand(cm: np.ndarray) -> float:
    ious = []
    for c in range(cm.shape[0]):
        tp = cm[c, c]
        union = cm[c, :].sum() + cm[:, c].sum() - tp
        if union > 0:
            ious.append(tp / union)
    return 100 * float(np.mean(ious))


def test_miou_interval_resamples_images_of_the_summed_confusion():
    rng = np.random.default_rng(4)
    per_image = rng.integers(0, 50, size=(25, 3, 3))
    per_image[:, 2, :] = 0  # class 2 never in the ground truth ...
    per_image[:, :, 2] = 0  # ... nor predicted: left out of the mean, as mmseg does (NaN IoU)
    spec = BootstrapSpec(H, resamples=200)
    point, ci = bs.miou_interval(per_image, spec)
    assert point == pytest.approx(_miou_by_hand(per_image.sum(0)))
    naive = [_miou_by_hand(per_image[r].sum(0)) for r in independent_indices(H, 0, 25, 200)]
    np.testing.assert_allclose(ci, np.percentile(naive, [2.5, 97.5]), atol=1e-9)
    # hand example: IoU(0) = 8 / (10 + 9 - 8), IoU(1) = 3 / (5 + 6 - 3)
    cm = np.array([[8, 2], [1, 3]])
    assert float(bs.miou_percent(cm)) == pytest.approx(100 * (8 / 11 + 3 / 6) / 2)


def test_bad_bootstrap_specs_are_refused():
    for kw in ({"split_sha256": "xyz"}, {"split_sha256": H, "seed": -1}, {"split_sha256": H, "resamples": 0},
               {"split_sha256": H, "level": 1.0}):
        with pytest.raises(ValueError):
            BootstrapSpec(**kw)


# ---------------------------------------------------------------------------------------------------------------------
# McNemar and Holm
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("b, c, p", [
    (1, 6, 2 * (1 + 7) / 2 ** 7),              # P(X <= 1 | 7) = 8/128 -> p = 0.125
    (0, 5, 2 / 2 ** 5),                        # 0.0625
    (2, 8, 2 * (1 + 10 + 45) / 2 ** 10),       # 0.109375
    (4, 4, 1.0), (0, 0, 1.0), (3, 0, 0.25),
])
def test_mcnemar_against_hand_computed_tables(b, c, p):
    assert binomial_two_sided_half(b, c) == pytest.approx(p, rel=1e-15)
    a = np.array([1] * b + [0] * c + [1] * 5 + [0] * 3)
    bb = np.array([0] * b + [1] * c + [1] * 5 + [0] * 3)
    t = mcnemar_exact(a, bb)
    assert (t.a_only, t.b_only) == (b, c) and t.p == pytest.approx(p, rel=1e-15)


def test_mcnemar_matches_scipy_binomtest():
    from scipy.stats import binomtest

    rng = np.random.default_rng(0)
    tables = [(int(x), int(y)) for x, y in rng.integers(0, 60, size=(40, 2))] + [(1500, 1580), (12, 3000)]
    for b, c in tables:
        if b + c == 0:
            continue
        ref = binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue
        assert binomial_two_sided_half(b, c) == pytest.approx(ref, rel=1e-9, abs=1e-300), (b, c)


def test_holm_step_down():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, None, 0.01]) == [pytest.approx(0.5), None, pytest.approx(0.02)]
    assert holm([0.6, 0.7]) == [1.0, 1.0]  # 2 x 0.6 capped at 1, and monotone
    assert holm([0.02, 0.2]) == pytest.approx([0.04, 0.2])
    assert holm([]) == []


# ---------------------------------------------------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------------------------------------------------
def test_seed_aggregate_and_geobench_iqm():
    from scipy.stats import trim_mean

    a = aggregate([1.0, 2.0, 3.0, 4.0])
    assert a["iqm"] == 2.5 and a["mean"] == 2.5 and a["std"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert aggregate([1, 2, 3, 4, 100])["iqm"] == 3.0                      # cut int(0.25 * 5) = 1 per end
    assert aggregate(range(1, 9))["iqm"] == 4.5                            # n=8: mean of 3, 4, 5, 6
    vals = [71.2, 70.4, 73.9, 69.8, 72.5, 70.1]
    assert aggregate(vals)["iqm"] == pytest.approx(trim_mean(vals, 0.25))
    three = aggregate([1.0, 2.0, 4.0], seeds=[0, 1, 2])
    assert "iqm" not in three and three["min"] == 1.0 and three["max"] == 4.0 and three["seeds"] == [0, 1, 2]
    assert aggregate([5.0])["std"] is None
    with pytest.raises(ValueError):
        aggregate([])


# ---------------------------------------------------------------------------------------------------------------------
# Fractions
# ---------------------------------------------------------------------------------------------------------------------
def test_fractions_are_nested_stratified_and_hashed(ucm_mini):
    labels = np.array([s.label for s in ucm_mini.samples("train")])  # real: 21 classes x 16
    parent = ucm_mini.splits["train"].sha256
    fracs = [0.01, 0.1, 0.25, 0.5, 1.0]
    for seed in (0, 1):
        for draw in (0, 2):
            subs = [fraction_subset(labels, f, parent_sha256=parent, seed=seed, draw=draw) for f in fracs]
            for small, big in zip(subs, subs[1:]):
                assert set(small.indices) <= set(big.indices)
            for f, s in zip(fracs, subs):
                per_class = np.bincount(labels[s.indices], minlength=21)
                assert (per_class == fraction_count(16, f)).all()  # stratified: the same count in every class
                assert per_class.min() >= 1
            assert len(subs[-1].indices) == len(labels)
    assert fraction_count(16, 0.01) == 1 and fraction_count(16, 0.1) == 2 and fraction_count(16, 0.25) == 4
    assert fraction_count(90, 0.05) == 5 and fraction_count(10, 0.25) == 3  # 2.5 rounds half up (decimal fraction)
    a = fraction_subset(labels, 0.25, parent_sha256=parent, seed=0, draw=0)
    assert np.array_equal(a.indices, fraction_subset(labels, 0.25, parent_sha256=parent, seed=0, draw=0).indices)
    assert not np.array_equal(a.indices, fraction_subset(labels, 0.25, parent_sha256=parent, seed=0, draw=1).indices)
    assert not np.array_equal(a.indices, fraction_subset(labels, 0.25, parent_sha256=parent, seed=1, draw=0).indices)
    assert a.sha256 == subset_sha256(parent, a.indices) != subset_sha256(H, a.indices)
    rec = a.as_record()
    assert rec["n"] == 84 and rec["parent_split_sha256"] == parent and rec["actual_fraction"] == 0.25
    with pytest.raises(DataError):
        fraction_subset(labels, 0.0, parent_sha256=parent)
    with pytest.raises(DataError):
        fraction_subset(labels, 1.5, parent_sha256=parent)


def test_shots_are_nested_and_short_classes_are_recorded(ucm_mini):
    labels = np.array([s.label for s in ucm_mini.samples("train")])
    parent = ucm_mini.splits["train"].sha256
    s1, s5, s10 = (shots_subset(labels, n, parent_sha256=parent, seed=0, draw=0) for n in (1, 5, 10))
    assert set(s1.indices) <= set(s5.indices) <= set(s10.indices)
    assert (np.bincount(labels[s5.indices], minlength=21) == 5).all() and not s5.short_classes
    # the 5-shot subset is the 5 first of the same per-class order as a fraction subset of that draw
    f = fraction_subset(labels, 0.5, parent_sha256=parent, seed=0, draw=0)  # 8 per class
    assert set(s5.indices) <= set(f.indices)
    uneven = np.array([0] * 10 + [1] * 3 + [2] * 7)
    s = shots_subset(uneven, 5, parent_sha256=parent)
    assert s.short_classes == {1: 3} and np.bincount(uneven[s.indices]).tolist() == [5, 3, 5]
    assert s.as_record()["short_classes"] == {"1": 3}
    with pytest.raises(DataError, match="class 1 has 3"):
        shots_subset(uneven, 5, parent_sha256=parent, strict=True)
    all_subs = subsets(labels, parent_sha256=parent, fractions=[0.5, 0.1], shots=[2], draws=2)
    assert [(x.kind, x.value, x.draw) for x in all_subs] == [("fraction", 0.1, 0), ("fraction", 0.5, 0), ("shots", 2, 0),
                                                             ("fraction", 0.1, 1), ("fraction", 0.5, 1), ("shots", 2, 1)]


# ---------------------------------------------------------------------------------------------------------------------
# Robustness
# ---------------------------------------------------------------------------------------------------------------------
def test_robustness_summaries_by_hand():
    s = summaries([1.0, 0.5, 0.25, 0.125], np.array([90.0, 80.0, 70.0, 40.0]))
    assert s["worst_scale_top1"] == 40 and s["drop_to_smallest_scale"] == 50
    assert s["auc_log2_scale"] == pytest.approx((40 / 2 + 70 + 80 + 90 / 2) / 3)
    # uneven log spacing: x = -3, -1, 0
    s = summaries([1.0, 0.5, 0.125], np.array([90.0, 80.0, 40.0]))
    assert s["auc_log2_scale"] == pytest.approx(((40 + 80) / 2 * 2 + (80 + 90) / 2 * 1) / 3)
    # no scale 1.0: the drop starts at the largest scale
    s = summaries([0.5, 0.25], np.array([70.0, 60.0]))
    assert s["drop_to_smallest_scale"] == 10
    with pytest.raises(ValueError):
        summaries([1.0], np.array([90.0]))


def test_robustness_intervals_use_the_same_resamples():
    rng = np.random.default_rng(7)
    c = (rng.random((50, 3)) < [0.9, 0.7, 0.4]).astype(float)
    spec = BootstrapSpec(H, resamples=400)
    point, ci = robustness([1.0, 0.5, 0.25], c, spec)
    assert point["worst_scale_top1"] == c[:, 2].mean() * 100 and point["worst_scale"] == 0.25
    idx = independent_indices(H, 0, 50, 400)
    naive = np.array([[c[r, j].mean() * 100 for j in range(3)] for r in idx])
    worst = naive.min(axis=1)
    drop = naive[:, 0] - naive[:, 2]
    np.testing.assert_allclose(ci["worst_scale_top1"], np.percentile(worst, [2.5, 97.5]), atol=1e-9)
    np.testing.assert_allclose(ci["drop_to_smallest_scale"], np.percentile(drop, [2.5, 97.5]), atol=1e-9)


# ---------------------------------------------------------------------------------------------------------------------
# Record helpers
# ---------------------------------------------------------------------------------------------------------------------
def test_knn_fields_give_the_contract_fields():
    y, _ = fixed_example(40)
    rng = np.random.default_rng(3)
    preds = {(s, k): np.where(rng.random(40) < acc, y, (y + 1) % 5)
             for s, acc in ((1.0, 0.9), (0.5, 0.8), (0.25, 0.6), (0.125, 0.3)) for k in (10, 20)}
    f = knn_fields(y, preds, k_report=20, split_sha256=H, num_classes=5, resamples=500)
    record = {"summary": {"top1_avg": f.point["top1_avg"], "top1_per_scale": dict(f.point["top1_per_scale"])},
              "metrics": {}}
    f.apply(record)
    ci = record["summary"]["ci"]
    assert set(ci) == {"top1_avg", "top1_per_scale", "worst_scale_top1", "drop_to_smallest_scale", "auc_log2_scale"}
    assert set(ci["top1_per_scale"]) == {"1.0", "0.5", "0.25", "0.125"}
    assert set(record["summary"]["robustness"]) >= {"worst_scale_top1", "drop_to_smallest_scale", "auc_log2_scale"}
    st = record["metrics"]["statistics"]
    assert st["bootstrap"]["resamples"] == 500 and st["bootstrap"]["split_sha256"] == H and st["bootstrap"]["seed"] == 0
    assert "knn_s0.125_k10" in st["ci"] and "knn_avg_k10" in st["ci"]
    assert sorted(f.arrays) == sorted(["y_true"] + [f"pred__knn_s{s}_k{k}" for s in (1.0, 0.5, 0.25, 0.125)
                                                    for k in (10, 20)])
    lo, hi = ci["top1_avg"]
    assert lo <= f.point["top1_avg"] <= hi
    f.check_against(record["summary"])
    record["summary"]["top1_avg"] += 0.5
    with pytest.raises(ResultsError, match="top1_avg"):
        f.check_against(record["summary"])


def test_classification_and_segmentation_fields():
    y, pred = fixed_example(50)
    f = classification_fields(y, pred, split_sha256=H, num_classes=5, resamples=300)
    assert set(f.arrays) == {"y_true", "pred__top1"} and set(f.summary_ci) == {"top1"} and f.robustness is None
    cm = np.random.default_rng(0).integers(0, 9, size=(6, 3, 3))
    g = segmentation_fields(cm, split_sha256=H, resamples=300)
    assert set(g.arrays) == {"confusion"} and g.num_classes == 3
    assert g.point["mIoU"] == pytest.approx(_miou_by_hand(cm.sum(0)))


def test_draws_field_aggregates_one_subset_size(ucm_mini):
    from satbench.stats.fields import draws_field

    labels = np.array([s.label for s in ucm_mini.samples("train")])
    parent = ucm_mini.splits["train"].sha256
    subs = subsets(labels, parent_sha256=parent, fractions=[0.25], draws=3)
    d = draws_field([60.0, 62.0, 61.0], subs)
    assert d["mean"] == 61.0 and d["std"] == 1.0 and d["draws"] == [0, 1, 2] and d["fraction"] == 0.25
    assert d["subset_sha256"] == [s.sha256 for s in subs] and len(set(d["subset_sha256"])) == 3
    with pytest.raises(ValueError):
        draws_field([1.0, 2.0], subsets(labels, parent_sha256=parent, fractions=[0.1, 0.5]))


def test_knn_top5_interval_from_the_same_resamples():
    y, _ = fixed_example(40)
    rng = np.random.default_rng(8)
    preds = {(s, 20): np.where(rng.random(40) < 0.7, y, (y + 1) % 5) for s in (1.0, 0.5)}
    hits = {(s, 20): (rng.random(40) < 0.9).astype(int) for s in (1.0, 0.5)}
    f = knn_fields(y, preds, k_report=20, split_sha256=H, num_classes=5, resamples=300, top5_correct=hits)
    c5 = np.stack([hits[(1.0, 20)], hits[(0.5, 20)]], 1).astype(float)
    naive = [c5[r].mean() * 100 for r in independent_indices(H, 0, 40, 300)]
    np.testing.assert_allclose(f.summary_ci["top5_avg"], np.percentile(naive, [2.5, 97.5]), atol=1e-9)
    assert f.point["top5_avg"] == pytest.approx(c5.mean() * 100)
