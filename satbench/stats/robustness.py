"""Scale-robustness summary of a multi-scale kNN run (the numbers a GSD-aware model should win on).

For top-1 accuracies ``a_s`` (percent) at scales ``s`` (at least two distinct scales):

* ``worst_scale_top1`` = ``min_s a_s``.
* ``drop_to_smallest_scale`` = ``a_ref - a_smin``: from the reference scale 1.0 (the largest scale when 1.0 was not
  evaluated; recorded as ``reference_scale``) to the smallest scale. Positive = accuracy lost at low resolution.
* ``auc_log2_scale`` = the trapezoid-rule area under ``a`` against ``x = log2(s)`` (scales sorted ascending), divided by
  the span ``log2(s_max) - log2(s_min)``: the mean top-1 over log-scale, in percent (for the protocol's 1, 1/2, 1/4, 1/8
  it is ``(a_1/8 / 2 + a_1/4 + a_1/2 + a_1 / 2) / 3``).

Intervals: each summary is computed inside every bootstrap resample from the per-scale accuracies of the *same*
resampled images (:mod:`satbench.stats.bootstrap`), then the percentile interval is taken.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from satbench.stats.bootstrap import BootstrapSpec, bootstrap_means, interval

NAMES = ("worst_scale_top1", "drop_to_smallest_scale", "auc_log2_scale")
REFERENCE_SCALE = 1.0


def _check_scales(scales: Sequence[float]) -> np.ndarray:
    s = np.asarray([float(x) for x in scales], dtype=np.float64)
    if s.ndim != 1 or len(s) < 2 or len(np.unique(s)) != len(s) or not (s > 0).all():
        raise ValueError(f"robustness needs at least two distinct positive scales, got {list(scales)}")
    return s


def reference_index(scales: Sequence[float]) -> int:
    """Position of scale 1.0, else of the largest scale."""
    s = _check_scales(scales)
    hits = np.flatnonzero(s == REFERENCE_SCALE)
    return int(hits[0]) if len(hits) else int(np.argmax(s))


def summaries(scales: Sequence[float], top1: np.ndarray) -> dict[str, np.ndarray]:
    """The three summaries of per-scale top-1 ``[..., S]`` (e.g. ``[resamples, S]``), each ``[...]``."""
    s = _check_scales(scales)
    a = np.asarray(top1, dtype=np.float64)
    if a.shape[-1] != len(s):
        raise ValueError(f"top-1 has {a.shape[-1]} scales, expected {len(s)}")
    order = np.argsort(s)
    x = np.log2(s[order])
    y = a[..., order]
    area = (((y[..., 1:] + y[..., :-1]) / 2.0) * np.diff(x)).sum(axis=-1)
    return {"worst_scale_top1": y.min(axis=-1),
            "drop_to_smallest_scale": a[..., reference_index(s)] - a[..., int(np.argmin(s))],
            "auc_log2_scale": area / (x[-1] - x[0])}


def robustness(scales: Sequence[float], correct: np.ndarray,
               spec: Optional[BootstrapSpec] = None) -> tuple[dict[str, Any], dict[str, list[Optional[float]]]]:
    """(``summary["robustness"]``, its intervals) from per-image correctness ``[n, S]`` at one k.

    The point values use the full test set; the intervals the same resamples for every scale."""
    c = np.asarray(correct, dtype=np.float64)
    s = _check_scales(scales)
    if c.ndim != 2 or c.shape[1] != len(s):
        raise ValueError(f"correctness must be [n, {len(s)}], got {c.shape}")
    point_top1 = c.sum(axis=0) * 100.0 / c.shape[0]
    point = {k: float(v) for k, v in summaries(s, point_top1).items()}
    point.update(worst_scale=float(s[int(np.argmin(point_top1))]), reference_scale=float(s[reference_index(s)]),
                 smallest_scale=float(s.min()))
    if spec is None:
        return point, {}
    samples = summaries(s, 100.0 * bootstrap_means(c, spec))
    return point, {k: interval(samples[k], spec.level) for k in NAMES}
