"""satbench.stats.temperature: the NLL-minimising temperature, fitted only on a hold-out of the training split."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from satbench.stats.temperature import T_MIN, HoldOut, fit_temperature, nll, softmax_confidence

TRAIN = hashlib.sha256(b"train split").hexdigest()
TEST = hashlib.sha256(b"test split").hexdigest()


def holdout(n: int, split_sha256: str = TRAIN) -> HoldOut:
    return HoldOut("train", split_sha256, tuple(range(n)), 0.2, 0, "a test")


def sampled(n: int, t_true: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits / t_true): the right temperature is t_true."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 3.0, size=(n, 5))
    p = np.exp(z / t_true) / np.exp(z / t_true).sum(1, keepdims=True)
    y = np.array([rng.choice(5, p=row) for row in p])
    return z, y


def test_recovers_the_temperature_the_labels_were_drawn_with():
    z, y = sampled(4000, 2.5)
    fit = fit_temperature(z, y, holdout(4000), test_split_sha256=TEST)
    assert fit.temperature == pytest.approx(2.5, rel=0.06) and not fit.at_bound
    assert fit.nll_after < fit.nll_before == pytest.approx(nll(z, y))
    for t in (fit.temperature * 0.999, fit.temperature * 1.001):   # a minimum of the hold-out NLL
        assert nll(z, y, t) >= fit.nll_after
    rec = fit.as_record()
    assert rec["fitted_on"]["split_sha256"] == TRAIN and rec["fitted_on"]["n"] == 4000
    assert rec["fitted_on"]["indices_sha256"] == hashlib.sha256(np.arange(4000, dtype="<i8").tobytes()).hexdigest()


def test_a_separable_holdout_ends_at_the_bound():
    z = np.eye(3)[[0, 1, 2, 0]] * 5.0
    fit = fit_temperature(z, np.array([0, 1, 2, 0]), holdout(4), test_split_sha256=TEST)
    assert fit.at_bound and fit.temperature == pytest.approx(T_MIN)


def test_never_fitted_on_the_test_split():
    z, y = sampled(50, 1.0)
    with pytest.raises(ValueError, match="never on the test split"):
        fit_temperature(z, y, holdout(50, TEST), test_split_sha256=TEST)
    with pytest.raises(ValueError, match="50 logit rows for a hold-out of 40"):
        fit_temperature(z, y, holdout(40), test_split_sha256=TEST)


def test_softmax_confidence_is_the_predicted_class_probability():
    import torch

    z, _ = sampled(30, 1.0, seed=3)
    pred = z.argmax(1)
    for t in (1.0, 0.5, 3.0):
        ref = torch.softmax(torch.tensor(z) / t, dim=1).max(dim=1).values.numpy()
        assert np.allclose(softmax_confidence(z, pred, t), ref, rtol=0, atol=1e-12)
