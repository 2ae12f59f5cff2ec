"""Percentile bootstrap over test images with resamples that are a deterministic function of the split.

Definition of the resample-index matrix (``R`` resamples of ``n`` images, split hash ``H`` (64 hex digits), seed ``s``):

* ``E = int(H, 16)``, the 256-bit split hash as an integer.
* Resamples are drawn in blocks of :data:`BLOCK` = 64 rows. Block ``j`` (``j = 0, 1, ...``) uses the generator
  ``numpy.random.Generator(numpy.random.PCG64(numpy.random.SeedSequence(E, spawn_key=(0xB007, s, j))))`` and draws
  ``integers(0, n, size=(64, n), dtype=numpy.int64)``; always the full block, so row ``r`` is row ``r - 64 j`` of block
  ``j = r // 64`` whatever ``R`` is (the first ``R`` rows of a longer run are the same resamples).
* Resample ``r`` is the multiset of image indices in row ``r``; a statistic of a resample is computed on those images
  (with multiplicity). For means (accuracy, per-image correctness averaged over scales, summed confusion counts) this is
  done exactly as ``counts @ values`` with ``counts[r, i]`` = how often image ``i`` occurs in row ``r``.

Two runs on the same split (same val split hash) with the same seed therefore use the **same** resamples, which is what
makes paired differences (model A vs model B on the same resampled images) meaningful. The interval is the percentile
interval ``numpy.percentile(samples, [50 (1 - level), 50 (1 + level)])`` (linear interpolation, numpy's default).
Memory stays bounded: one block of ``64 x n`` indices and counts at a time (27 MB each at n = 53,000).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import numpy as np

#: Resamples per generator block: part of the definition of the resample matrix (do not change).
BLOCK = 64
#: Domain tag in the SeedSequence spawn key (keeps these streams apart from other uses of the same split hash).
DOMAIN = 0xB007
DEFAULT_RESAMPLES = 10_000
DEFAULT_LEVEL = 0.95
DEFAULT_SEED = 0
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_VECTOR_BINCOUNT_MAX = 1 << 18  # block histograms up to this many bins are counted in one call
_F32_EXACT = float(1 << 24)      # float32 represents every integer below this exactly


@dataclass(frozen=True)
class BootstrapSpec:
    """Which resamples: the val split's sha256, the seed, the number of resamples and the interval level."""

    split_sha256: str
    seed: int = DEFAULT_SEED
    resamples: int = DEFAULT_RESAMPLES
    level: float = DEFAULT_LEVEL

    def __post_init__(self) -> None:
        if not isinstance(self.split_sha256, str) or not _HEX64.match(self.split_sha256):
            raise ValueError(f"split_sha256 must be 64 lowercase hex digits, got {self.split_sha256!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"bootstrap seed must be a non-negative integer, got {self.seed!r}")
        if not isinstance(self.resamples, int) or isinstance(self.resamples, bool) or self.resamples < 1:
            raise ValueError(f"resamples must be a positive integer, got {self.resamples!r}")
        if not 0 < float(self.level) < 1:
            raise ValueError(f"level must be in (0, 1), got {self.level!r}")

    def as_record(self) -> dict[str, Any]:
        """``metrics["statistics"]["bootstrap"]`` of a record."""
        return {"resamples": self.resamples, "seed": self.seed, "level": self.level,
                "split_sha256": self.split_sha256, "method": "percentile",
                "resample_matrix": f"numpy PCG64(SeedSequence(int(split_sha256, 16), spawn_key=({DOMAIN:#x}, seed, "
                                   f"block))).integers(0, n, ({BLOCK}, n)), blocks of {BLOCK} rows",
                "numpy": np.__version__}


def resample_indices(spec: BootstrapSpec, n: int) -> Iterator[np.ndarray]:
    """The resample-index matrix ``[resamples, n]`` in blocks of at most :data:`BLOCK` rows (see the module docstring)."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"cannot resample {n!r} images")
    entropy = int(spec.split_sha256, 16)
    for j in range((spec.resamples + BLOCK - 1) // BLOCK):
        ss = np.random.SeedSequence(entropy, spawn_key=(DOMAIN, spec.seed, j))
        block = np.random.Generator(np.random.PCG64(ss)).integers(0, int(n), size=(BLOCK, int(n)), dtype=np.int64)
        yield block[:min(BLOCK, spec.resamples - j * BLOCK)]


def resample_counts(spec: BootstrapSpec, n: int, dtype: Any = np.float64) -> Iterator[np.ndarray]:
    """Per block, ``counts[r, i]`` = occurrences of image ``i`` in resample ``r`` (rows sum to ``n``)."""
    for idx in resample_indices(spec, n):
        b = idx.shape[0]
        if b * n <= _VECTOR_BINCOUNT_MAX:  # the whole block's histogram fits in cache: one bincount
            flat = (idx + (np.arange(b, dtype=np.int64) * n)[:, None]).ravel()
            yield np.bincount(flat, minlength=b * n).reshape(b, n).astype(dtype)
        else:  # row-wise: an n-sized histogram stays in cache
            counts = np.empty(idx.shape, dtype=dtype)
            for r in range(b):
                counts[r] = np.bincount(idx[r], minlength=n)
            yield counts


def _as_columns(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2 or v.shape[0] < 1:
        raise ValueError(f"expected per-image values [n] or [n, K], got shape {v.shape}")
    return v


def bootstrap_sums(values: np.ndarray, spec: BootstrapSpec) -> np.ndarray:
    """Resampled column sums ``[resamples, K]`` of per-image values ``[n]`` or ``[n, K]``.

    Integer values are summed exactly: in float32 when every partial sum stays below 2**24 (faster), else float64."""
    v = _as_columns(values)
    n = v.shape[0]
    integral = bool(np.isfinite(v).all() and np.array_equal(v, np.round(v)))
    dt = np.float32 if integral and n * float(np.abs(v).max(initial=0.0)) < _F32_EXACT else np.float64
    vv = v.astype(dt)
    out = np.empty((spec.resamples, v.shape[1]), dtype=np.float64)
    r0 = 0
    with _one_blas_thread():  # [64, n] @ [n, K] is too small to gain from BLAS threads (and loses under load)
        for counts in resample_counts(spec, n, dtype=dt):
            out[r0:r0 + counts.shape[0]] = counts @ vv
            r0 += counts.shape[0]
    return out


def _one_blas_thread() -> Any:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a scikit-learn dependency
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(1, user_api="blas")


def bootstrap_means(values: np.ndarray, spec: BootstrapSpec) -> np.ndarray:
    """Resampled column means ``[resamples, K]`` (e.g. per-image correctness -> accuracy in [0, 1])."""
    v = _as_columns(values)
    return bootstrap_sums(v, spec) / v.shape[0]


def bootstrap_statistic(statistic: Callable[[np.ndarray], Any], n: int, spec: BootstrapSpec) -> np.ndarray:
    """Any statistic of per-image vectors: ``statistic(idx)`` for each resample's index row ``idx`` (the slow, general
    path; use :func:`bootstrap_means` for means). Returns ``[resamples, ...]``."""
    out = [np.asarray(statistic(row), dtype=np.float64) for idx in resample_indices(spec, n) for row in idx]
    return np.stack(out)


def percentile_interval(samples: np.ndarray, level: float = DEFAULT_LEVEL) -> np.ndarray:
    """The ``level`` percentile interval along axis 0: ``[2, ...]`` = (lower, upper); NaN samples are ignored."""
    a = np.asarray(samples, dtype=np.float64)
    q = [50.0 * (1.0 - level), 50.0 * (1.0 + level)]
    if np.isnan(a).any():
        return np.nanpercentile(a, q, axis=0)
    return np.percentile(a, q, axis=0)


def interval(samples: np.ndarray, level: float = DEFAULT_LEVEL) -> list[Optional[float]]:
    """``[lo, hi]`` of a 1-D sample as plain floats (None when undefined)."""
    lo, hi = percentile_interval(np.asarray(samples).reshape(-1), level)
    return [None if not np.isfinite(lo) else float(lo), None if not np.isfinite(hi) else float(hi)]


# ---------------------------------------------------------------------------------------------------------------------
# Accuracy, paired differences, mIoU
# ---------------------------------------------------------------------------------------------------------------------
def correctness(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per-image 0/1 correctness of top-1 predictions."""
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    if yt.shape != yp.shape or yt.ndim != 1:
        raise ValueError(f"y_true {yt.shape} and y_pred {yp.shape} must be equal-length vectors")
    return (yt == yp).astype(np.float64)


def accuracy_percent(correct: np.ndarray) -> float:
    """Accuracy in percent, computed as the runners do (``count * 100.0 / n``)."""
    c = np.asarray(correct)
    return float(c.sum()) * 100.0 / max(1, c.shape[0])


def accuracy_interval(y_true: np.ndarray, y_pred: np.ndarray, spec: BootstrapSpec) -> tuple[float, list[Optional[float]]]:
    """(top-1 %, [lo, hi] %) of one prediction vector."""
    c = correctness(y_true, y_pred)
    return accuracy_percent(c), interval(100.0 * bootstrap_means(c, spec)[:, 0], spec.level)


def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray, spec: BootstrapSpec) -> tuple[float, list[Optional[float]]]:
    """(accuracy A - accuracy B in points, paired-bootstrap [lo, hi]): both resampled on the same images.

    ``correct_*`` may be ``[n]`` or ``[n, S]`` (several scales: the scales are averaged inside each resample)."""
    a, b = _as_columns(correct_a), _as_columns(correct_b)
    if a.shape != b.shape:
        raise ValueError(f"paired vectors differ in shape: {a.shape} vs {b.shape}")
    d = (a - b).mean(axis=1)
    samples = 100.0 * bootstrap_means(d, spec)[:, 0]
    return float(d.sum()) * 100.0 / d.shape[0], interval(samples, spec.level)


def miou_percent(confusion: np.ndarray) -> np.ndarray:
    """mIoU (%) of summed confusion matrices ``[..., C, C]`` (rows = true, cols = predicted) as mmseg computes it:
    IoU_c = TP / (TP + FP + FN); classes with an empty union are NaN and left out of the mean (``nanmean``)."""
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    union = cm.sum(axis=-1) + cm.sum(axis=-2) - tp
    iou = np.where(union > 0, tp / np.where(union > 0, union, 1.0), np.nan)
    return 100.0 * _nanmean_last(iou)


def _nanmean_last(x: np.ndarray) -> np.ndarray:
    """``nanmean`` over the last axis without the all-NaN warning (all-NaN rows give NaN)."""
    valid = ~np.isnan(x)
    cnt = valid.sum(axis=-1)
    s = np.where(valid, x, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)


def confusion_bootstrap(confusion: np.ndarray, spec: BootstrapSpec) -> np.ndarray:
    """Resampled summed confusion matrices ``[resamples, C, C]`` from per-image confusions ``[n, C, C]``."""
    cm = np.asarray(confusion)
    if cm.ndim != 3 or cm.shape[1] != cm.shape[2]:
        raise ValueError(f"expected per-image confusion counts [n, C, C], got shape {cm.shape}")
    n, c, _ = cm.shape
    return bootstrap_sums(cm.reshape(n, c * c), spec).reshape(spec.resamples, c, c)


def miou_interval(confusion: np.ndarray, spec: BootstrapSpec) -> tuple[float, list[Optional[float]]]:
    """(mIoU % of the summed confusion, bootstrap [lo, hi] % over images)."""
    cm = np.asarray(confusion)
    point = float(miou_percent(cm.sum(axis=0)))
    return point, interval(miou_percent(confusion_bootstrap(cm, spec)), spec.level)
