"""satbench.stats.robustness: scale-robustness summaries by hand and their intervals on shared resamples."""

from __future__ import annotations

import numpy as np
import pytest

from satbench.stats.bootstrap import BootstrapSpec
from satbench.stats.robustness import robustness, summaries
from support.stats_examples import H, independent_indices


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
