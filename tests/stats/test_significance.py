"""satbench.stats.significance: exact McNemar against hand-computed tables and scipy, Holm's step-down."""

from __future__ import annotations

import numpy as np
import pytest

from satbench.stats.significance import binomial_two_sided_half, holm, mcnemar_exact


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
