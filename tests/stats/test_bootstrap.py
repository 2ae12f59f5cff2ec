"""satbench.stats.bootstrap: the resample matrix as a documented function of the split hash and seed,
intervals against independent computations, coverage of a known binomial, multi-scale and paired resampling, mIoU."""

from __future__ import annotations

import math

import numpy as np
import pytest

from satbench.stats import bootstrap as bs
from satbench.stats.bootstrap import BootstrapSpec
from support.stats_examples import H, H2, fixed_example, independent_indices, miou_by_hand


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


def test_miou_interval_resamples_images_of_the_summed_confusion():
    rng = np.random.default_rng(4)
    per_image = rng.integers(0, 50, size=(25, 3, 3))
    per_image[:, 2, :] = 0  # class 2 never in the ground truth ...
    per_image[:, :, 2] = 0  # ... nor predicted: left out of the mean, as mmseg does (NaN IoU)
    spec = BootstrapSpec(H, resamples=200)
    point, ci = bs.miou_interval(per_image, spec)
    assert point == pytest.approx(miou_by_hand(per_image.sum(0)))
    naive = [miou_by_hand(per_image[r].sum(0)) for r in independent_indices(H, 0, 25, 200)]
    np.testing.assert_allclose(ci, np.percentile(naive, [2.5, 97.5]), atol=1e-9)
    # hand example: IoU(0) = 8 / (10 + 9 - 8), IoU(1) = 3 / (5 + 6 - 3)
    cm = np.array([[8, 2], [1, 3]])
    assert float(bs.miou_percent(cm)) == pytest.approx(100 * (8 / 11 + 3 / 6) / 2)


def test_bad_bootstrap_specs_are_refused():
    for kw in ({"split_sha256": "xyz"}, {"split_sha256": H, "seed": -1}, {"split_sha256": H, "resamples": 0},
               {"split_sha256": H, "level": 1.0}):
        with pytest.raises(ValueError):
            BootstrapSpec(**kw)
