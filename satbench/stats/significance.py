"""Significance of paired classification results: the exact McNemar test and Holm's step-down correction."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Optional, Sequence

import numpy as np


@dataclass(frozen=True)
class McNemar:
    """Discordant pairs and the exact two-sided p-value.

    ``a_only``: images A gets right and B wrong; ``b_only``: B right, A wrong; ``p``: McNemar's exact test."""

    a_only: int
    b_only: int
    p: float

    @property
    def discordant(self) -> int:
        return self.a_only + self.b_only


def binomial_two_sided_half(b: int, c: int) -> float:
    """Exact two-sided p-value of ``b`` successes in ``b + c`` fair coin flips: ``min(1, 2 P(X <= min(b, c)))``,
    ``X ~ Binomial(b + c, 1/2)``, in exact integer arithmetic (no floating-point tail sums); 1.0 when ``b + c = 0``."""
    if b < 0 or c < 0:
        raise ValueError(f"counts must be non-negative, got {b}, {c}")
    n, m = b + c, min(b, c)
    if n == 0:
        return 1.0
    term, tail = 1, 1  # C(n, 0)
    for i in range(1, m + 1):
        term = term * (n - i + 1) // i
        tail += term
    return float(min(Fraction(1), Fraction(2 * tail, 1 << n)))


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """McNemar's exact test on two per-image correctness vectors of the same images (binomial on discordant pairs)."""
    a = np.asarray(correct_a).astype(bool)
    b = np.asarray(correct_b).astype(bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired correctness vectors must be equal-length 1-D, got {a.shape} and {b.shape}")
    a_only = int(np.count_nonzero(a & ~b))
    b_only = int(np.count_nonzero(~a & b))
    return McNemar(a_only, b_only, binomial_two_sided_half(a_only, b_only))


def holm(pvalues: Sequence[Optional[float]]) -> list[Optional[float]]:
    """Holm's step-down adjusted p-values, in the input order (None entries are not tests and stay None).

    Sorted ascending, ``p_(i)`` becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))`` for ``m`` tests."""
    tests = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    m = len(tests)
    out: list[Optional[float]] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(tests, key=lambda t: (t[0], t[1]))):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-value {p!r} is not in [0, 1]")
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out
