"""Aggregate of a trained probe repeated over seeds (``record["summary"]["seeds"]``).

mean, sample standard deviation (``ddof=1``; None for one seed), min, max, and -- from 4 seeds on -- the interquartile
mean as GEO-Bench computes it (``geobench/plot_tools.py``: ``scipy.stats.trim_mean(scores, proportiontocut=0.25)``),
i.e. ``int(0.25 n)`` values cut from each end of the sorted values, the mean of the rest (n=4: the middle 2; n=5: the
middle 3; n=8: the middle 4).
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

IQM_MIN_SEEDS = 4


def iqm(values: Sequence[float]) -> float:
    """Interquartile mean, GEO-Bench's definition (``scipy.stats.trim_mean(values, 0.25)``)."""
    from scipy.stats import trim_mean

    return float(trim_mean(np.asarray(values, dtype=np.float64), proportiontocut=0.25))


def aggregate(values: Sequence[float], seeds: Optional[Sequence[int]] = None) -> dict[str, Any]:
    """``{"n", "values", "mean", "std", "min", "max"}`` (+ ``"iqm"`` when n >= 4, ``"seeds"`` when given)."""
    v = [float(x) for x in values]
    if not v:
        raise ValueError("no seed values to aggregate")
    if not all(math.isfinite(x) for x in v):
        raise ValueError(f"seed values must be finite numbers, got {v}")
    if seeds is not None and len(seeds) != len(v):
        raise ValueError(f"{len(seeds)} seeds for {len(v)} values")
    a = np.asarray(v)
    out: dict[str, Any] = {"n": len(v), "values": v, "mean": float(a.mean()),
                           "std": float(a.std(ddof=1)) if len(v) > 1 else None,
                           "min": float(a.min()), "max": float(a.max())}
    if len(v) >= IQM_MIN_SEEDS:
        out["iqm"] = iqm(v)
    if seeds is not None:
        out["seeds"] = [int(s) for s in seeds]
    return out


def aggregate_summaries(summaries: Sequence[dict[str, Any]], metric: str,
                        seeds: Optional[Sequence[int]] = None) -> dict[str, Any]:
    """:func:`aggregate` of ``summary[metric]`` over the per-seed records' summaries (each must have it)."""
    vals = []
    for i, s in enumerate(summaries):
        x = s.get(metric)
        if not isinstance(x, (int, float)) or isinstance(x, bool):
            raise ValueError(f"seed run {i} has no numeric summary[{metric!r}] (got {x!r})")
        vals.append(float(x))
    return aggregate(vals, seeds)
