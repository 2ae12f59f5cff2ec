"""satbench.stats.seeds: seed aggregates (mean, sample std, min/max, GEO-Bench's IQM)."""

from __future__ import annotations

import numpy as np
import pytest

from satbench.stats.seeds import aggregate


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
