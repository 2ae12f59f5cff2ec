"""satbench.stats.calibration: ECE / RMS / MCE over the uniform15 binning, exact on a hand-computed example, equal to an
independent numpy loop and to torchmetrics, with exact bootstrap resamples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from satbench.stats.bootstrap import BootstrapSpec
from satbench.stats.calibration import binning, calibration_errors, calibration_intervals, reliability
from support.stats_examples import H, independent_indices

# 8 images; bins of width 1/15, confidence exactly 1 in a bin of its own:
#   bin 14 [14/15, 1): 0.95 (right)                          gap 0.05
#   bin 13 [13/15, 14/15): 0.90 (wrong)                      gap 0.90
#   bin 10 [10/15, 11/15): 0.70 (right), 0.72 (wrong)        acc 0.5, conf 0.71, gap 0.21
#   bin 4 [4/15, 5/15): 0.30 (wrong)                         gap 0.30
#   bin of 1: 1.0, 1.0 (right), 1.0 (wrong)                  acc 2/3, conf 1, gap 1/3
CONF = np.array([0.95, 0.90, 0.70, 0.72, 0.30, 1.0, 1.0, 1.0])
CORRECT = np.array([1, 0, 1, 0, 0, 1, 1, 0])
ECE = (0.05 + 0.90 + 2 * 0.21 + 0.30 + 3 * (1 / 3)) / 8                                   # 0.33375
RMS = math.sqrt((0.05 ** 2 + 0.90 ** 2 + 2 * 0.21 ** 2 + 0.30 ** 2 + 3 * (1 / 3) ** 2) / 8)  # 0.40682...
MCE = 0.90


def loop_errors(conf: np.ndarray, correct: np.ndarray, bins: int = 15) -> dict[str, float]:
    """Calibration errors written out as a plain loop over the bins (not satbench's code)."""
    n = len(conf)
    ece = sq = mce = 0.0
    for m in range(bins + 1):
        if m < bins:
            mask = (conf >= m / bins) & (conf < (m + 1) / bins)
        else:
            mask = conf == 1.0
        if mask.sum() == 0:
            continue
        gap = abs(correct[mask].mean() - conf[mask].mean())
        ece += mask.sum() / n * gap
        sq += mask.sum() / n * gap ** 2
        mce = max(mce, gap)
    return {"ece": 100 * ece, "rms": 100 * math.sqrt(sq), "mce": 100 * mce}


def random_case(n: int, seed: int, classes: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probabilities [n, C], labels, top-1 correctness), some rows one-hot (confidence exactly 1)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2.0, size=(n, classes))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    p[: n // 5] = np.eye(classes)[rng.integers(0, classes, n // 5)]
    y = np.where(rng.random(n) < 0.6, p.argmax(1), rng.integers(0, classes, n))
    return p, y, (p.argmax(1) == y).astype(int)


def test_hand_computed_example():
    e = calibration_errors(CONF, CORRECT)
    assert e["ece"] == pytest.approx(100 * ECE, abs=1e-12)
    assert e["rms"] == pytest.approx(100 * RMS, abs=1e-12)
    assert e["mce"] == pytest.approx(100 * MCE, abs=1e-12)
    assert e == pytest.approx(loop_errors(CONF, CORRECT), abs=1e-12)
    bins = reliability(CONF, CORRECT)
    assert [(b["lo"], b["n"]) for b in bins] == [(4 / 15, 1), (10 / 15, 2), (13 / 15, 1), (14 / 15, 1), (1.0, 3)]
    assert bins[1]["accuracy"] == 50.0 and bins[1]["confidence"] == pytest.approx(71.0)


def test_confidence_one_has_a_bin_of_its_own():
    """Pooled with 0.95 (an upper-closed last bin) the example would give another ECE."""
    pooled = (0.90 + 2 * 0.21 + 0.30 + 4 * abs(3 / 4 - (0.95 + 3) / 4)) / 8
    assert calibration_errors(CONF, CORRECT)["ece"] != pytest.approx(100 * pooled)
    assert list(binning().index(np.array([0.0, 0.5, 14.5 / 15, 1.0]))) == [0, 7, 14, 15]


def test_equals_an_independent_loop_on_random_inputs():
    for seed in range(5):
        p, _, correct = random_case(300, seed)
        assert calibration_errors(p.max(1), correct) == pytest.approx(loop_errors(p.max(1), correct), abs=1e-10)


def test_equals_torchmetrics():
    tm = pytest.importorskip("torchmetrics.functional.classification")
    import torch

    for seed in range(3):
        p, y, correct = random_case(500, seed)
        mine = calibration_errors(p.max(1), correct)
        for name, norm in (("ece", "l1"), ("rms", "l2"), ("mce", "max")):
            ref = tm.multiclass_calibration_error(torch.tensor(p, dtype=torch.float64), torch.tensor(y),
                                                  num_classes=p.shape[1], n_bins=15, norm=norm)
            assert mine[name] == pytest.approx(100 * float(ref), abs=1e-4), (seed, name)


def test_refuses_bad_inputs():
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        calibration_errors([0.5, 1.2], [1, 0])
    with pytest.raises(ValueError, match="0 or 1"):
        calibration_errors([0.5, 0.7], [1, 2])
    with pytest.raises(ValueError, match="one shape"):
        calibration_errors([0.5, 0.7], [1])
    with pytest.raises(ValueError, match="unknown calibration binning"):
        binning("k+1")


def test_bootstrap_samples_are_the_statistic_of_each_resample():
    p, _, correct = random_case(120, 7)
    conf = p.max(1)
    spec = BootstrapSpec(H, resamples=130)
    res = calibration_intervals(conf, correct, spec)
    idx = independent_indices(H, 0, 120, 130)
    for r in (0, 63, 64, 129):
        ref = loop_errors(conf[idx[r]], correct[idx[r]])
        assert {k: float(res.samples[0][k][r]) for k in ref} == pytest.approx(ref, abs=1e-9)
    block = res.block(0)
    assert block["ece"] == pytest.approx(loop_errors(conf, correct)["ece"])
    for name in ("ece", "rms", "mce"):
        raw = res.samples[0][name]
        bias = raw.mean() - block[name]
        assert block["bootstrap_bias"][name] == pytest.approx(bias)
        assert block["ci_percentile"][name] == pytest.approx(list(np.percentile(raw, [2.5, 97.5])))
        assert block["ci"][name] == pytest.approx(list(np.percentile(raw - bias, [2.5, 97.5])))
        lo, hi = block["ci"][name]
        assert lo <= block[name] <= hi, name


def test_the_recentred_interval_brackets_the_point_where_the_plain_one_does_not():
    """A well calibrated sample: the resamples' ECE is biased upward, the plain percentile interval lies above the
    ECE; the re-centred one brackets it."""
    rng = np.random.default_rng(4)
    conf = rng.uniform(0.3, 1.0, 84)
    correct = (rng.random(84) < conf).astype(int)
    block = calibration_intervals(conf, correct, BootstrapSpec(H, resamples=2000)).block(0)
    assert block["bootstrap_bias"]["ece"] > 0 and block["ci_percentile"]["ece"][0] > block["ece"]
    for name in ("ece", "rms", "mce"):
        lo, hi = block["ci"][name]
        assert lo <= block[name] <= hi, name


def test_several_columns_average_inside_each_resample():
    p, _, c1 = random_case(80, 1)
    q, _, c2 = random_case(80, 2)
    conf = np.stack([p.max(1), q.max(1)], axis=1)
    spec = BootstrapSpec(H, resamples=64)
    res = calibration_intervals(conf, np.stack([c1, c2], axis=1), spec)
    one = calibration_intervals(conf[:, 1], c2, spec)
    assert np.array_equal(res.samples[1]["ece"], one.samples[0]["ece"])
    assert np.allclose(res.mean_samples["rms"], (res.samples[0]["rms"] + res.samples[1]["rms"]) / 2)
    assert res.mean_point["mce"] == pytest.approx((res.point[0]["mce"] + res.point[1]["mce"]) / 2)


def test_the_screen_line_and_a_hostile_record():
    from satbench.stats.formatting import calibration_line

    block = {"ece": 4.1, "rms": 5.0, "mce": 12.0, "ci": {"ece": [3.2, 5.0], "rms": [4.0, 6.0], "mce": [8.0, 20.0]},
             "k": 20, "over": "mean over 4 scales"}
    assert calibration_line({"calibration": block}) == ("calibration (k=20, mean over 4 scales): ECE 4.10 [3.20, 5.00], "
                                                        "RMS 5.00 [4.00, 6.00], MCE 12.00 [8.00, 20.00] (%)")
    scaled = {"ece": 2.0, "rms": 3.0, "mce": 9.0, "ci": {}, "temperature": 1.5}
    line = calibration_line({"calibration": {**block, "k": None, "over": None, "temperature": 1.5, "scaled": scaled}})
    assert line.startswith("calibration: ECE 4.10") and line.endswith(
        "; temperature-scaled (T = 1.5): ECE 2.00, RMS 3.00, MCE 9.00 (%)")
    assert calibration_line({}) is None and calibration_line({"calibration": [1]}) is None
    hostile = {"ece": "x", "rms": float("nan"), "mce": True, "ci": {"ece": "bad", "rms": [1, "a"]}, "k": "20",
               "temperature": "hot", "scaled": {"ece": []}}
    assert calibration_line({"calibration": hostile}) == ("calibration: ECE -, RMS -, MCE - (%); temperature-scaled "
                                                          "(T = -): ECE -, RMS -, MCE - (%)")
