"""Calibration error of top-label confidences: ECE, RMS calibration error and MCE over equal-width bins, each with a
percentile bootstrap interval over the test images (the resamples of :mod:`satbench.stats.bootstrap`).

For ``n`` images with top-label confidence ``c_i`` in [0, 1] and correctness ``a_i`` in {0, 1}, a binning puts each
image in one bin ``b``; with ``n_b`` images in bin ``b``, ``acc_b`` / ``conf_b`` their mean correctness / confidence:

* ``ECE = sum_b (n_b / n) |acc_b - conf_b|``
* ``RMS = sqrt(sum_b (n_b / n) (acc_b - conf_b)^2)``
* ``MCE = max_{b: n_b > 0} |acc_b - conf_b|``

all reported in percent. Binning ``uniform15`` (the only one, used by every classification record): 15 equal-width bins
``[m/15, (m+1)/15)``, ``m = 0..14``, lower edge included, and confidence exactly 1 in a 16th bin of its own. That is
torchmetrics' ``multiclass_calibration_error(n_bins=15)`` binning (``bucketize(c, linspace(0, 1, 16), right=True) - 1``),
so the three numbers are its ``norm="l1"``, ``"l2"`` and ``"max"`` on the same confidences. The bin of its own for
``c = 1`` matters for kNN: SatDINO's votes are weighted by ``exp(sim / T)`` (spec 3.3 item 6), so the normalised top
vote is continuous in (0, 1] -- not a multiple of 1/k, which is what torchgeo-bench's k + 1 bins are made for (uniform
votes) -- except for one point mass, the queries whose k neighbours all share one class (confidence exactly 1); that
level set of the confidence is its own bin instead of being pooled with 14/15 <= c < 1.

Intervals: a statistic of a resample needs only the per-bin counts and sums, which are ``counts @ columns`` of the
per-image columns (bin indicator, confidence x indicator, correctness x indicator), so every resample is exact
(:func:`satbench.stats.bootstrap.bootstrap_sums`) and uses the same images as the record's accuracy intervals.
Binned calibration errors are biased upward (sampling noise in a bin only ever adds to ``|acc_b - conf_b|``), and a
resample, whose duplicated images fill fewer bins with fewer distinct images, more so than the point estimate: on 84
val images the plain percentile interval of the ECE lay wholly above the ECE itself. So the recorded ``ci`` is the
percentile interval of the resamples **re-centred on the point** (each resampled value minus the resamples' mean bias
``mean(resampled) - point``): the spread of the estimate around it. The plain percentile interval
(``ci_percentile``) and the bias (``bootstrap_bias``) are recorded beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from satbench.stats.bootstrap import BootstrapSpec, bootstrap_sums, interval

NAMES = ("ece", "rms", "mce")
DEFAULT_BINNING = "uniform15"


@dataclass(frozen=True)
class Binning:
    """Equal-width bins ``[m / bins, (m + 1) / bins)`` plus a bin of its own for confidence exactly 1."""

    name: str
    bins: int

    @property
    def slots(self) -> int:
        """Number of bins counting the one for confidence 1."""
        return self.bins + 1

    def index(self, conf: np.ndarray) -> np.ndarray:
        """Bin of each confidence (``bins`` for exactly 1), as ``torch.bucketize(c, edges, right=True) - 1``."""
        edges = np.linspace(0.0, 1.0, self.bins + 1)
        return np.searchsorted(edges, np.asarray(conf, dtype=np.float64), side="right") - 1

    def as_record(self) -> dict[str, Any]:
        return {"name": self.name, "bins": self.bins,
                "edges": f"[m/{self.bins}, (m+1)/{self.bins}) for m = 0..{self.bins - 1}; confidence exactly 1 in a bin "
                         f"of its own",
                "same_as": f"torchmetrics multiclass_calibration_error(n_bins={self.bins}), norm l1 / l2 / max"}


BINNINGS = {DEFAULT_BINNING: Binning(DEFAULT_BINNING, 15)}


def binning(name: str = DEFAULT_BINNING) -> Binning:
    """The named binning (one line naming the known ones otherwise)."""
    if name not in BINNINGS:
        raise ValueError(f"unknown calibration binning {name!r}; known: {', '.join(sorted(BINNINGS))}")
    return BINNINGS[name]


def check_inputs(conf: Any, correct: Any) -> tuple[np.ndarray, np.ndarray]:
    """(confidences, 0/1 correctness) as float64 arrays of one shape ``[n]`` or ``[n, S]``; refused otherwise."""
    c = np.asarray(conf, dtype=np.float64)
    a = np.asarray(correct)
    if a.dtype == bool:
        a = a.astype(np.float64)
    a = a.astype(np.float64)
    if c.shape != a.shape or c.ndim not in (1, 2) or c.shape[0] < 1:
        raise ValueError(f"confidences {c.shape} and correctness {a.shape} must be one shape [n] or [n, S], n >= 1")
    if not np.isfinite(c).all() or (c < 0).any() or (c > 1).any():
        raise ValueError("confidences must be finite numbers in [0, 1]")
    if not np.isin(a, (0.0, 1.0)).all():
        raise ValueError("correctness must be 0 or 1")
    return c, a


def bin_columns(conf: np.ndarray, correct: np.ndarray, bins: Binning) -> np.ndarray:
    """Per-image columns ``[n, 3 * slots]``: bin indicator, confidence in the bin, correctness in the bin (one
    confidence vector ``[n]``)."""
    idx = bins.index(conf)
    onehot = np.zeros((conf.shape[0], bins.slots), dtype=np.float64)
    onehot[np.arange(conf.shape[0]), idx] = 1.0
    return np.concatenate([onehot, onehot * conf[:, None], onehot * correct[:, None]], axis=1)


def errors_from_sums(sums: np.ndarray, slots: int) -> dict[str, np.ndarray]:
    """ECE, RMS and MCE (fractions) from per-bin sums ``[..., 3 * slots]`` (count, confidence, correctness)."""
    s = np.asarray(sums, dtype=np.float64)
    cnt, sc, sa = s[..., :slots], s[..., slots:2 * slots], s[..., 2 * slots:3 * slots]
    n = cnt.sum(axis=-1)
    safe = np.where(cnt > 0, cnt, 1.0)
    gap = np.where(cnt > 0, np.abs(sa - sc) / safe, 0.0)            # |acc_b - conf_b|, 0 for empty bins
    weight = cnt / n[..., None]
    return {"ece": (weight * gap).sum(axis=-1), "rms": np.sqrt((weight * gap ** 2).sum(axis=-1)),
            "mce": gap.max(axis=-1)}


def calibration_errors(conf: Any, correct: Any, bins: Optional[Binning] = None) -> dict[str, float]:
    """ECE, RMS and MCE in percent of one confidence vector."""
    b = bins or binning()
    c, a = check_inputs(conf, correct)
    if c.ndim != 1:
        raise ValueError("calibration_errors takes one confidence vector [n]")
    e = errors_from_sums(bin_columns(c, a, b).sum(axis=0), b.slots)
    return {k: 100.0 * float(v) for k, v in e.items()}


def reliability(conf: Any, correct: Any, bins: Optional[Binning] = None) -> list[dict[str, Any]]:
    """The non-empty bins: ``{"lo", "hi", "n", "accuracy", "confidence"}`` (accuracy and confidence in percent;
    the bin of confidence 1 has ``lo = hi = 1``) -- the points of a reliability diagram."""
    b = bins or binning()
    c, a = check_inputs(conf, correct)
    s = bin_columns(c, a, b).sum(axis=0)
    out = []
    for m in range(b.slots):
        n = int(s[m])
        if n:
            lo = m / b.bins if m < b.bins else 1.0
            hi = (m + 1) / b.bins if m < b.bins else 1.0
            out.append({"lo": lo, "hi": hi, "n": n, "accuracy": 100.0 * float(s[2 * b.slots + m]) / n,
                        "confidence": 100.0 * float(s[b.slots + m]) / n})
    return out


@dataclass
class CalibrationResult:
    """Point values (percent) and resampled values ``[resamples]`` (percent) per name, per confidence column, and of
    the mean over the columns (several kNN scales: averaged inside each resample)."""

    point: list[dict[str, float]]
    samples: list[dict[str, np.ndarray]]
    mean_point: dict[str, float]
    mean_samples: dict[str, np.ndarray]
    level: float

    def block(self, column: Optional[int] = None) -> dict[str, Any]:
        """``{"ece", "rms", "mce", "ci", "ci_percentile", "bootstrap_bias"}`` of one column (None: the mean over
        columns); ``ci``: the re-centred percentile interval (see the module docstring)."""
        p = self.mean_point if column is None else self.point[column]
        s = self.mean_samples if column is None else self.samples[column]
        bias = {k: float(np.mean(s[k]) - p[k]) for k in NAMES}
        return {**{k: p[k] for k in NAMES}, "ci": {k: interval(s[k] - bias[k], self.level) for k in NAMES},
                "ci_percentile": {k: interval(s[k], self.level) for k in NAMES}, "bootstrap_bias": bias}


def calibration_intervals(conf: Any, correct: Any, spec: BootstrapSpec,
                          bins: Optional[Binning] = None) -> CalibrationResult:
    """ECE / RMS / MCE with bootstrap samples for confidences ``[n]`` or ``[n, S]`` (one column per kNN scale)."""
    b = bins or binning()
    c, a = check_inputs(conf, correct)
    if c.ndim == 1:
        c, a = c[:, None], a[:, None]
    width = 3 * b.slots
    cols = np.concatenate([bin_columns(c[:, j], a[:, j], b) for j in range(c.shape[1])], axis=1)
    resampled = bootstrap_sums(cols, spec)                               # [R, S * width]
    point, samples = [], []
    for j in range(c.shape[1]):
        pe = errors_from_sums(cols[:, j * width:(j + 1) * width].sum(axis=0), b.slots)
        se = errors_from_sums(resampled[:, j * width:(j + 1) * width], b.slots)
        point.append({k: 100.0 * float(pe[k]) for k in NAMES})
        samples.append({k: 100.0 * se[k] for k in NAMES})
    mean_point = {k: float(np.mean([p[k] for p in point])) for k in NAMES}
    mean_samples = {k: np.mean(np.stack([s[k] for s in samples], axis=1), axis=1) for k in NAMES}
    return CalibrationResult(point, samples, mean_point, mean_samples, spec.level)
