"""Table strings for statistics: a value with its interval, a seed aggregate, a signed difference, a p-value, the
calibration errors."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence


def value_ci(value: Optional[float], ci: Optional[Sequence[Optional[float]]] = None, digits: int = 2) -> str:
    """``93.10 [91.20, 95.00]`` (just the value when there is no interval; ``-`` for no value)."""
    if value is None:
        return "-"
    s = f"{value:.{digits}f}"
    if ci and len(ci) == 2 and ci[0] is not None and ci[1] is not None:
        s += f" [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"
    return s


def signed_ci(value: Optional[float], ci: Optional[Sequence[Optional[float]]] = None, digits: int = 2) -> str:
    """``+0.48 [-1.19, +2.14]``: a difference with its interval, signs always shown."""
    if value is None:
        return "-"
    s = f"{value:+.{digits}f}"
    if ci and len(ci) == 2 and ci[0] is not None and ci[1] is not None:
        s += f" [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}]"
    return s


def seeds(agg: Optional[Mapping[str, Any]], digits: int = 2) -> str:
    """``93.10 +- 0.42 (n=3)`` from ``summary["seeds"]`` (``+- -`` for a single seed)."""
    if not agg:
        return "-"
    std = agg.get("std")
    return f"{agg['mean']:.{digits}f} +- {'-' if std is None else format(std, f'.{digits}f')} (n={agg['n']})"


def pvalue(p: Optional[float]) -> str:
    """``0.0312``, ``3.1e-07`` or ``-``."""
    if p is None:
        return "-"
    return f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}"


def _number(v: Any) -> Optional[float]:
    """``v`` as a finite float, None for anything else (records read from disk are untrusted)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
        return None
    return float(v)


def _pair(v: Any) -> Optional[list[Optional[float]]]:
    return [_number(x) for x in v] if isinstance(v, (list, tuple)) and len(v) == 2 else None


def calibration(block: Optional[Mapping[str, Any]], digits: int = 2) -> str:
    """``ECE 4.10 [3.20, 5.00], RMS ..., MCE ... (%)`` of a ``summary["calibration"]`` block (``-`` without one)."""
    if not isinstance(block, Mapping):
        return "-"
    ci = block.get("ci") if isinstance(block.get("ci"), Mapping) else {}
    parts = [f"{name.upper()} {value_ci(_number(block.get(name)), _pair(ci.get(name)), digits)}"
             for name in ("ece", "rms", "mce")]
    return ", ".join(parts) + " (%)"


def calibration_line(summary: Mapping[str, Any], digits: int = 2) -> Optional[str]:
    """The one screen line of a record's calibration (None when the record has none)."""
    block = summary.get("calibration")
    if not isinstance(block, Mapping):
        return None
    k = block.get("k")
    where = [f"k={k}"] if isinstance(k, int) and not isinstance(k, bool) else []
    if isinstance(block.get("over"), str):
        where.append(block["over"][:60])
    head = "calibration" + (f" ({', '.join(where)})" if where else "")
    line = f"{head}: {calibration(block, digits)}"
    if isinstance(block.get("scaled"), Mapping):
        t = _number(block.get("temperature"))
        line += f"; temperature-scaled (T = {'-' if t is None else format(t, '.3g')}): " \
                f"{calibration(block['scaled'], digits)}"
    return line
