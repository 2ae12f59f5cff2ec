"""satbench.stats.fields: the statistics fields of kNN, classification, segmentation and draws records."""

from __future__ import annotations

import numpy as np
import pytest

from satbench.errors import ResultsError
from satbench.stats.fields import classification_fields, knn_fields, segmentation_fields
from satbench.stats.fractions import subsets
from support.stats_examples import H, fixed_example, independent_indices, miou_by_hand


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
    assert g.point["mIoU"] == pytest.approx(miou_by_hand(cm.sum(0)))


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
