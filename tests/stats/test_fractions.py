"""satbench.stats.fractions: nested, class-stratified, hashed label fractions and shots on the real bundled images."""

from __future__ import annotations

import numpy as np
import pytest

from satbench.errors import DataError
from satbench.stats.fractions import fraction_count, fraction_subset, shots_subset, subset_sha256, subsets
from support.stats_examples import H


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
