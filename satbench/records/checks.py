"""Whether the numbers and typed facts of a result record are sane before any table, delta, interval or note uses them.

A record is untrusted (hand-edited, copied, written by another version): :func:`satbench.records.results.record_problem`
checks its shape and types, then :func:`value_problem` checks what the numbers *mean*:

* accuracy-like numbers (``top1``, ``top1_avg``, ``mIoU``, per-scale top-1, seed values...) are finite percentages in
  [0, 100]; ``drop_to_smallest_scale`` (a difference of two percentages) lies in [-100, 100];
* an interval ``summary.ci.<metric>`` is ``[lo, hi]`` with ``lo <= hi`` inside the metric's range and, for the numbers
  the tables print, ``lo <= value <= hi`` (within :data:`TOL`);
* ``summary.k`` / ``metrics.k_report`` / protocol ``k_report``, ``iters`` and ``recipe_iters`` are positive integers,
  ``summary.seeds.n`` a positive integer matching its values, ``provenance.date`` ISO 8601, ``weights.sha256`` and
  ``weights.tensors_sha256`` 64 hex digits, ``weights.seed`` an integer.

Each problem is one short text naming the field (``summary.top1_avg must be a percentage in [0, 100], got 150``); the
readers skip such a record with one warning line (:func:`satbench.records.results.read_records`).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from typing import Any, Optional

#: Summary numbers that are percentages in [0, 100] (classification accuracies, segmentation scores, robustness).
PERCENT_KEYS = ("top1", "top5", "top1_avg", "top5_avg", "mIoU", "mFscore", "mAcc", "aAcc", "mDice", "mPrecision",
                "mRecall", "worst_scale_top1", "auc_log2_scale")
#: Summary numbers that are differences of two percentages, in [-100, 100].
SIGNED_PERCENT_KEYS = ("drop_to_smallest_scale",)
#: Intervals whose point value need not lie inside them: the percentile bootstrap of a minimum is biased low.
UNCOVERED_INTERVALS = ("worst_scale_top1",)
#: Slack for comparisons of an interval with its value (values are rounded when written).
TOL = 1e-9
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _show(v: Any) -> str:
    try:
        text = json.dumps(v)
    except (TypeError, ValueError):
        text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _range(name: str) -> Optional[tuple[float, float]]:
    if name in PERCENT_KEYS or name == "top1_per_scale":
        return 0.0, 100.0
    if name in SIGNED_PERCENT_KEYS:
        return -100.0, 100.0
    return None


def _range_text(lo: float, hi: float) -> str:
    return f"a percentage in [{lo:g}, {hi:g}]" if lo == 0 else f"a difference of percentages in [{lo:g}, {hi:g}]"


def _number_problem(where: str, v: Any, bounds: Optional[tuple[float, float]]) -> Optional[str]:
    """``v`` is a finite number (inside ``bounds`` when given); ``None`` passes (absent)."""
    if v is None:
        return None
    if not _is_number(v) or not math.isfinite(v):
        return f"{where} must be a finite number, got {_show(v)}"
    if bounds is not None and not bounds[0] <= v <= bounds[1]:
        return f"{where} must be {_range_text(*bounds)}, got {_show(v)}"
    return None


def _positive_int_problem(where: str, v: Any) -> Optional[str]:
    if v is None:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        return f"{where} must be a positive integer, got {_show(v)}"
    return None


def _dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _summary_problem(summary: dict[str, Any]) -> Optional[str]:
    for key in PERCENT_KEYS + SIGNED_PERCENT_KEYS:
        p = _number_problem(f"summary.{key}", summary.get(key), _range(key))
        if p:
            return p
    for scale, v in _dict(summary.get("top1_per_scale")).items():
        p = _number_problem(f"summary.top1_per_scale[{str(scale)[:40]}]", v, (0.0, 100.0))
        if p:
            return p
    for key, v in _dict(summary.get("robustness")).items():
        if key in PERCENT_KEYS + SIGNED_PERCENT_KEYS:
            p = _number_problem(f"summary.robustness.{key}", v, _range(key))
            if p:
                return p
    return _positive_int_problem("summary.k", summary.get("k"))


def _interval_problem(where: str, iv: Any, value: Any, bounds: Optional[tuple[float, float]],
                      covers: bool) -> Optional[str]:
    if iv is None:
        return None
    if (not isinstance(iv, (list, tuple)) or len(iv) != 2 or
            not all(_is_number(x) and math.isfinite(x) for x in iv)):
        return f"{where} must be [lo, hi] finite numbers, got {_show(iv)}"
    lo, hi = float(iv[0]), float(iv[1])
    if bounds is not None and not (bounds[0] <= lo and hi <= bounds[1]):
        return f"{where} {_show(list(iv))} must lie in [{bounds[0]:g}, {bounds[1]:g}]"
    if lo > hi + TOL:
        return f"{where} {_show(list(iv))} must be [lo, hi] with lo <= hi"
    if covers and _is_number(value) and not lo - TOL <= value <= hi + TOL:
        return f"{where} {_show(list(iv))} does not contain its value {_show(value)}"
    return None


def _intervals_problem(summary: dict[str, Any]) -> Optional[str]:
    robustness = _dict(summary.get("robustness"))
    for name, iv in _dict(summary.get("ci")).items():
        name = str(name)
        where = f"summary.ci.{name[:40]}"
        value = summary.get(name, robustness.get(name))
        covers = name not in UNCOVERED_INTERVALS
        if isinstance(iv, dict):  # per-scale intervals: {scale: [lo, hi]} next to summary[name] = {scale: value}
            values = _dict(value)
            for key, sub in iv.items():
                p = _interval_problem(f"{where}[{str(key)[:40]}]", sub, values.get(key), _range(name), covers)
                if p:
                    return p
            continue
        p = _interval_problem(where, iv, value, _range(name), covers)
        if p:
            return p
    return None


def _seeds_problem(seeds: Any) -> Optional[str]:
    if not isinstance(seeds, dict):
        return None
    n = seeds.get("n")
    p = _positive_int_problem("summary.seeds.n", n)
    if p or n is None:
        return p or "summary.seeds.n must be a positive integer, got nothing"
    values = seeds.get("values")
    if values is not None:
        if not isinstance(values, list) or len(values) != n:
            return f"summary.seeds.values must be a list of n = {n} numbers, got {_show(values)}"
        for i, v in enumerate(values):
            p = _number_problem(f"summary.seeds.values[{i}]", v, (0.0, 100.0))
            if p:
                return p
    for key in ("mean", "min", "max", "iqm", "median"):
        p = _number_problem(f"summary.seeds.{key}", seeds.get(key), (0.0, 100.0))
        if p:
            return p
    std = seeds.get("std")
    if std is not None and (not _is_number(std) or not math.isfinite(std) or std < 0):
        return f"summary.seeds.std must be a finite number >= 0 or null, got {_show(std)}"
    return None


def _protocol_problem(protocol: dict[str, Any]) -> Optional[str]:
    content = protocol.get("content")
    if isinstance(content, dict):
        where, params = "protocol.content.params", _dict(content.get("params"))
    else:
        where, params = "protocol.params", _dict(protocol.get("params"))
    for key in ("k_report", "iters", "recipe_iters"):
        p = _positive_int_problem(f"{where}.{key}", params.get(key))
        if p:
            return p
    return None


def _date_problem(provenance: dict[str, Any]) -> Optional[str]:
    if "date" not in provenance:
        return None
    date = provenance["date"]
    try:
        if not isinstance(date, str):
            raise ValueError
        _dt.datetime.fromisoformat(date)
    except ValueError:
        return f"provenance.date must be an ISO 8601 date and time, got {_show(date)}"
    return None


def _weights_problem(weights: dict[str, Any]) -> Optional[str]:
    for key in ("sha256", "tensors_sha256"):
        sha = weights.get(key)
        if sha is not None and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
            return f"weights.{key} must be 64 hexadecimal digits or null, got {_show(sha)}"
    seed = weights.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        return f"weights.seed must be an integer or null, got {_show(seed)}"
    return None


def value_problem(rec: Any) -> Optional[str]:
    """Why the numbers or typed facts of record ``rec`` cannot be shown (one text naming the field), or None.

    Fields that are absent pass (older records); sections of the wrong type are left to
    :func:`satbench.records.results.record_problem`."""
    if not isinstance(rec, dict):
        return None
    summary = _dict(rec.get("summary"))
    for problem in (_summary_problem(summary), _intervals_problem(summary), _seeds_problem(summary.get("seeds")),
                    _positive_int_problem("metrics.k_report", _dict(rec.get("metrics")).get("k_report")),
                    _protocol_problem(_dict(rec.get("protocol"))), _date_problem(_dict(rec.get("provenance"))),
                    _weights_problem(_dict(rec.get("weights")))):
        if problem:
            return problem
    return None


def date_key(rec: dict[str, Any]) -> _dt.datetime:
    """The record's ``provenance.date`` as a UTC-aware datetime for ordering runs (a date without an offset is taken as
    UTC, as satbench writes it; a missing or unreadable date sorts first), so offsets never reorder "latest of N"."""
    date = (rec.get("provenance") or {}).get("date") if isinstance(rec.get("provenance"), dict) else None
    try:
        d = _dt.datetime.fromisoformat(date) if isinstance(date, str) else None
    except ValueError:
        d = None
    if d is None:
        return _dt.datetime.min.replace(tzinfo=_dt.timezone.utc)
    return d if d.tzinfo is not None else d.replace(tzinfo=_dt.timezone.utc)
