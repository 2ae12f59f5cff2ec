"""Top-1 against corruption severity of one record (``metrics["corruptions"]``, :mod:`satbench.stats.corruption`):
one line per corruption type with its bootstrap intervals (the record's level, 95% by default) as error bars, the clean top-1 as a horizontal line with
its interval as a band, the legend right of the axes inside the figure. Records are untrusted: the block is checked
first (:func:`corruption_curves`) and every fault is one :class:`~satbench.errors.ResultsError` line naming the
record and the key."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from satbench.errors import ResultsError

#: At most this many conditions in a block (12 types x 5 severities).
MAX_CONDITIONS = 60


@dataclass(frozen=True)
class CorruptionCurves:
    """The checked figures of a corruption block: clean top-1 and interval, and per type (in record order) its
    ``(severity, top1, interval)`` points sorted by severity."""

    clean: float
    clean_ci: Optional[tuple[float, float]]
    curves: dict[str, list[tuple[int, float, Optional[tuple[float, float]]]]]
    protocol: str
    metric: str


def _percent(v: Any, where: str, key: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)) \
            or not 0.0 <= float(v) <= 100.0:
        raise ResultsError(f"{where}: {key} is {str(v)[:40]!r}, expected a percentage 0..100")
    return float(v)


def _interval(v: Any, where: str, key: str) -> Optional[tuple[float, float]]:
    if v is None:
        return None
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise ResultsError(f"{where}: {key} is {str(v)[:40]!r}, expected an interval [lo, hi] or null")
    lo, hi = (_percent(x, where, key) for x in v)
    if lo > hi:
        raise ResultsError(f"{where}: {key} is [{lo}, {hi}], lo above hi")
    return lo, hi


def corruption_curves(block: Any, where: str = "record") -> CorruptionCurves:
    """The figures of ``metrics["corruptions"]`` (``block``), checked: clean top-1 and conditions of known types,
    severities 1..5 each at most once, percentages and intervals [lo, hi]."""
    from satbench.data.corruptions import SEVERITIES, TYPES

    key = "metrics.corruptions"
    if not isinstance(block, Mapping):
        raise ResultsError(f"{where}: {key} is {type(block).__name__}, expected a mapping")
    clean = block.get("clean")
    if not isinstance(clean, Mapping):
        raise ResultsError(f"{where}: {key}.clean is missing or not a mapping with top1 and ci")
    value = "mIoU" if "mIoU" in clean else "top1"  # segmentation's block measures mIoU
    c = _percent(clean.get(value), where, f"{key}.clean.{value}")
    c_ci = _interval(clean.get("ci"), where, f"{key}.clean.ci")
    conds = block.get("conditions")
    if not isinstance(conds, list) or not conds or len(conds) > MAX_CONDITIONS:
        raise ResultsError(f"{where}: {key}.conditions must be a list of 1..{MAX_CONDITIONS} conditions")
    curves: dict[str, list[tuple[int, float, Optional[tuple[float, float]]]]] = {}
    seen: set[tuple[str, int]] = set()
    for i, r in enumerate(conds):
        k = f"{key}.conditions[{i}]"
        if not isinstance(r, Mapping):
            raise ResultsError(f"{where}: {k} is {type(r).__name__}, expected a mapping")
        kind, sev = r.get("type"), r.get("severity")
        if not isinstance(kind, str) or kind not in TYPES:
            raise ResultsError(f"{where}: {k}.type is {str(kind)[:40]!r}, expected one of {', '.join(TYPES)}")
        if isinstance(sev, bool) or not isinstance(sev, int) or sev not in SEVERITIES:
            raise ResultsError(f"{where}: {k}.severity is {str(sev)[:40]!r}, expected an integer 1..5")
        if (kind, sev) in seen:
            raise ResultsError(f"{where}: {k}: {kind}/{sev} is listed twice")
        seen.add((kind, sev))
        curves.setdefault(kind, []).append((sev, _percent(r.get(value), where, f"{k}.{value}"),
                                            _interval(r.get("ci"), where, f"{k}.ci")))
    proto = block.get("protocol")
    name = proto.get("name") if isinstance(proto, Mapping) else None
    h = proto.get("hash") if isinstance(proto, Mapping) else None
    label = (str(name)[:60] if isinstance(name, str) else "?") + (f" {h[:12]}" if isinstance(h, str) else "")
    metric = block.get("metric")
    return CorruptionCurves(c, c_ci, {t: sorted(v) for t, v in curves.items()}, label,
                            "mIoU" if value == "mIoU" else str(metric)[:60] if isinstance(metric, str) else "top-1")


def corruptions_figure(curves: CorruptionCurves, title: str = "") -> Any:
    """The figure of :func:`corruption_curves`' figures (see the module docstring)."""
    from satbench.leaderboard.plots import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.2, 4.2), layout="constrained")
    sevs = sorted({s for pts in curves.curves.values() for s, _, _ in pts})
    if curves.clean_ci is not None:
        ax.axhspan(*curves.clean_ci, color="0.85", zorder=0, label="clean interval")
    ax.axhline(curves.clean, color="black", ls="--", lw=1.2, zorder=1, label=f"clean {curves.clean:.2f}")
    cmap = plt.get_cmap("tab20" if len(curves.curves) > 10 else "tab10")
    n = len(curves.curves)
    for i, (kind, pts) in enumerate(curves.curves.items()):
        dx = 0.0 if n == 1 else (i - (n - 1) / 2) * min(0.05, 0.5 / n)  # side by side: the bars do not hide each other
        xs = [s + dx for s, _, _ in pts]
        ys = [v for _, v, _ in pts]
        err = [[v - ci[0] if ci else 0.0 for _, v, ci in pts], [ci[1] - v if ci else 0.0 for _, v, ci in pts]]
        ax.errorbar(xs, ys, yerr=err, marker="o", ms=4, lw=1.4, capsize=2.5, color=cmap(i % cmap.N), label=kind,
                    zorder=2)
    ax.set_xticks(sevs)
    ax.set_xlim(min(sevs) - 0.5, max(sevs) + 0.5)
    ax.set_xlabel("severity")
    ax.set_ylabel(f"{curves.metric} (%)")
    ax.grid(True, alpha=0.3)
    ax.set_title(title or f"corruptions ({curves.protocol})", fontsize=9)
    fig.legend(loc="outside right upper", fontsize=8, frameon=False,
               title=f"type (bars: bootstrap intervals)\n{curves.protocol}", title_fontsize=7)
    return fig


def corruptions_png(block: Any, where: str = "record", title: str = "") -> bytes:
    """PNG bytes of :func:`corruptions_figure` for ``metrics["corruptions"]`` (checked first: one line on a fault)."""
    from satbench.leaderboard.plots import _png

    return _png(corruptions_figure(corruption_curves(block, where), title))
