"""Temperature scaling (Guo et al. 2017): one ``T > 0`` that minimises the mean negative log-likelihood of
``softmax(z / T)`` on held-out logits of the **training** split, then applied to the test logits. Never fitted on the
test split: :func:`fit_temperature` takes the hold-out's provenance (:class:`HoldOut`) and refuses one drawn from the
test split (same split sha256) or without indices.

The fit: with ``beta = 1 / T``, ``NLL(beta) = mean_i(logsumexp(beta z_i) - beta z_{i, y_i})`` is convex in ``beta``,
so ``dNLL/dbeta = mean_i(E_softmax(beta z_i)[z] - z_{i, y_i})`` increases with ``beta``; its root is found by bisection
on ``log beta`` over ``T`` in [:data:`T_MIN`, :data:`T_MAX`] (200 halvings: deterministic, exact to float64). A root
outside that range (e.g. a hold-out the head separates perfectly, whose NLL falls all the way to ``T -> 0``) ends at the
bound and says so (``at_bound``). Everything is float64 numpy.

Temperature scaling applies to the linear probes (softmax of logits). kNN votes are not logits: a temperature on the
log-votes (``p_c ~ v_c^(1/T)``) cannot move the queries whose neighbours all share one class (confidence exactly 1 for
every ``T``), the largest mass of a kNN's confidences, so satbench records it as not applicable to kNN.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

T_MIN = 0.01
T_MAX = 100.0
_HALVINGS = 200


@dataclass(frozen=True)
class HoldOut:
    """Where the fitting logits come from: ``indices`` (sorted, into the ``split`` named by ``split_sha256``), the
    ``fraction`` and ``seed`` that drew them, and how (``source``)."""

    split: str
    split_sha256: str
    indices: tuple[int, ...]
    fraction: float
    seed: int
    source: str

    def as_record(self) -> dict[str, Any]:
        idx = np.asarray(self.indices, dtype="<i8")
        return {"split": self.split, "split_sha256": self.split_sha256, "fraction": self.fraction, "seed": self.seed,
                "n": int(len(idx)), "indices_sha256": hashlib.sha256(idx.tobytes()).hexdigest(), "source": self.source}


@dataclass
class TemperatureFit:
    """The fitted temperature, the hold-out NLL at ``T = 1`` and at ``T``, and whether ``T`` is a bound of the search."""

    temperature: float
    nll_before: float
    nll_after: float
    at_bound: bool
    holdout: HoldOut

    def as_record(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "holdout_nll_t1": self.nll_before, "holdout_nll": self.nll_after,
                "at_bound": self.at_bound, "search": f"bisection on log(1/T), T in [{T_MIN:g}, {T_MAX:g}]",
                "fitted_on": self.holdout.as_record()}


def _logits(z: Any) -> np.ndarray:
    a = np.asarray(z, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 2 or not np.isfinite(a).all():
        raise ValueError(f"logits must be finite [n, C] with n >= 1 and C >= 2, got shape {a.shape}")
    return a


def _log_softmax(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def nll(logits: Any, labels: Any, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of ``softmax(logits / temperature)``."""
    z = _logits(logits)
    y = np.asarray(labels, dtype=np.int64)
    return float(-_log_softmax(z / temperature)[np.arange(len(y)), y].mean())


def _slope(z: np.ndarray, y: np.ndarray, beta: float) -> float:
    p = np.exp(_log_softmax(beta * z))
    return float(((p * z).sum(axis=1) - z[np.arange(len(y)), y]).mean())


def fit_temperature(logits: Any, labels: Any, holdout: HoldOut, *, test_split_sha256: str) -> TemperatureFit:
    """The NLL-minimising temperature of held-out logits ``[n, C]`` and labels ``[n]`` (see the module docstring).

    ``holdout`` names where the rows come from; a hold-out of the test split (``test_split_sha256``) or whose index
    count differs from the rows is refused."""
    if holdout.split_sha256 == test_split_sha256:
        raise ValueError("temperature scaling is fitted on a held-out part of the training split, never on the test "
                         "split (the hold-out's split sha256 is the test split's)")
    z = _logits(logits)
    y = np.asarray(labels)
    if y.shape != (z.shape[0],) or y.dtype.kind not in "iu" or (y < 0).any() or (y >= z.shape[1]).any():
        raise ValueError(f"labels must be [{z.shape[0]}] class indices < {z.shape[1]}")
    if len(holdout.indices) != z.shape[0]:
        raise ValueError(f"{z.shape[0]} logit rows for a hold-out of {len(holdout.indices)} images")
    y = y.astype(np.int64)
    lo, hi = math.log(1.0 / T_MAX), math.log(1.0 / T_MIN)   # log beta
    if _slope(z, y, math.exp(hi)) <= 0:          # NLL still falls at T_MIN
        beta, bound = math.exp(hi), True
    elif _slope(z, y, math.exp(lo)) >= 0:        # NLL already rises at T_MAX
        beta, bound = math.exp(lo), True
    else:
        for _ in range(_HALVINGS):
            mid = 0.5 * (lo + hi)
            if _slope(z, y, math.exp(mid)) > 0:
                hi = mid
            else:
                lo = mid
        beta, bound = math.exp(0.5 * (lo + hi)), False
    t = 1.0 / beta
    return TemperatureFit(t, nll(z, y, 1.0), nll(z, y, t), bound, holdout)


def softmax_confidence(logits: Any, pred: Any, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / T)`` of each row's predicted class ``pred`` (float64; a temperature never changes the arg
    max, so ``pred`` is the top label at every ``T``)."""
    z = _logits(logits)
    p = np.asarray(pred, dtype=np.int64)
    if p.shape != (z.shape[0],):
        raise ValueError(f"pred must be [{z.shape[0]}], got {p.shape}")
    return np.exp(_log_softmax(z / float(temperature))[np.arange(len(p)), p])


def not_applicable(reason: str) -> dict[str, Any]:
    """``metrics.calibration.temperature_scaling`` of a run without it."""
    return {"applied": False, "reason": reason}


def applied(fit: TemperatureFit, errors: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """``metrics.calibration.temperature_scaling`` of a scaled run (``errors``: the scaled ECE / RMS / MCE block)."""
    out = {"applied": True, **fit.as_record()}
    if errors is not None:
        out["scaled"] = errors
    return out
