"""The leaderboard's corruption-robustness tables, from the records' ``summary["corruptions"]``
(:func:`satbench.stats.corruption.corruption_summary`): clean top-1, mCA, relative drop and the worst type's top-1,
each with its interval, per run.

Figures of different corruption protocols (name and hash) or of different (types, severities) sets are not
comparable (an mCA over gaussian_noise at severity 5 is not one over all 12 types at 1..5), nor are top-1 and mIoU
(segmentation records say ``metric: mIoU``): each such set gets a table of its own, never a shared column. Records without corruptions add nothing. Records are untrusted: a malformed
``summary.corruptions`` is one :class:`~satbench.errors.ResultsError` line naming the file and the key, before any
table is built."""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from satbench.errors import ResultsError
from satbench.leaderboard import runs as R
from satbench.leaderboard.layout import Cell, Row, Table, column_of, ds_sort_key, latest_runs, spec_for_record

_HASH = re.compile(r"^[0-9a-f]{64}$")
#: The value columns: (summary key, its ``ci`` key, header).
COLUMNS = (("clean_top1", "clean_top1", "clean top-1"), ("mca", "mca", "mCA"),
           ("relative_drop", "relative_drop", "relative drop (%)"),
           ("worst_type_top1", "worst_type_top1", "worst type top-1"))
#: ``summary.corruptions.metric`` -> its name in headers (classification records name none: top-1).
METRICS = {"top1": "top-1", "mIoU": "mIoU"}


@dataclass(frozen=True)
class CorruptionFigures:
    """A record's checked ``summary.corruptions``."""

    protocol: str
    protocol_hash: str
    types: tuple[str, ...]
    severities: tuple[int, ...]
    worst_type: str
    values: dict[str, Optional[float]]
    ci: dict[str, Optional[tuple[float, float]]]
    #: what the figures measure: ``top1`` (classification) or ``mIoU`` (segmentation)
    metric: str = "top1"

    @property
    def group(self) -> tuple:
        """What makes two runs' figures comparable."""
        return self.protocol, self.protocol_hash, self.types, self.severities, self.metric

    def set_text(self) -> str:
        return f"{', '.join(self.types)} x severities {', '.join(map(str, self.severities))}"


def _number(v: Any, where: str, key: str, percent: bool) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)) \
            or (percent and not 0.0 <= float(v) <= 100.0):
        raise ResultsError(f"{where}: {key} is {str(v)[:40]!r}, expected "
                           f"{'a percentage 0..100' if percent else 'a finite number'}")
    return float(v)


def corruption_figures(rec: Mapping[str, Any]) -> Optional[CorruptionFigures]:
    """``summary.corruptions`` of ``rec`` checked (None when the record has none)."""
    from satbench.data.corruptions import SEVERITIES, TYPES

    summary = rec.get("summary")
    s = summary.get("corruptions") if isinstance(summary, Mapping) else None
    if s is None:
        return None
    where, key = R.where(rec), "summary.corruptions"
    if not isinstance(s, Mapping):
        raise ResultsError(f"{where}: {key} is {type(s).__name__}, expected a mapping")
    name, h = s.get("protocol"), s.get("protocol_hash")
    if not isinstance(name, str) or not name or len(name) > 100:
        raise ResultsError(f"{where}: {key}.protocol is {str(name)[:40]!r}, expected the corruption protocol's name")
    if not isinstance(h, str) or not _HASH.match(h):
        raise ResultsError(f"{where}: {key}.protocol_hash is {str(h)[:40]!r}, expected a sha256 hex digest")
    types, sevs = s.get("types"), s.get("severities")
    if not isinstance(types, list) or not types or any(t not in TYPES for t in types if isinstance(t, str)) \
            or not all(isinstance(t, str) for t in types) or len(set(types)) != len(types):
        raise ResultsError(f"{where}: {key}.types is {str(types)[:60]!r}, expected distinct corruption types "
                           f"({', '.join(TYPES)})")
    if not isinstance(sevs, list) or not sevs or not all(isinstance(v, int) and not isinstance(v, bool)
                                                         and v in SEVERITIES for v in sevs) \
            or len(set(sevs)) != len(sevs):
        raise ResultsError(f"{where}: {key}.severities is {str(sevs)[:60]!r}, expected distinct integers 1..5")
    metric = s.get("metric", "top1")
    if metric not in METRICS:
        raise ResultsError(f"{where}: {key}.metric is {str(metric)[:40]!r}, expected one of {', '.join(METRICS)}")
    worst = s.get("worst_type")
    if worst not in types:
        raise ResultsError(f"{where}: {key}.worst_type is {str(worst)[:40]!r}, expected one of its types "
                           f"{', '.join(types)}")
    values: dict[str, Optional[float]] = {}
    for k, _, _ in COLUMNS:
        v = s.get(k)
        if v is None and k == "relative_drop":  # undefined when the clean top-1 is 0
            values[k] = None
            continue
        values[k] = _number(v, where, f"{key}.{k}", k != "relative_drop")
    ci_block = s.get("ci")
    if not isinstance(ci_block, Mapping):
        raise ResultsError(f"{where}: {key}.ci is missing or not a mapping of intervals")
    ci: dict[str, Optional[tuple[float, float]]] = {}
    for k, ci_key, _ in COLUMNS:
        v = ci_block.get(ci_key)
        if v is None:
            ci[k] = None
            continue
        if not isinstance(v, list) or len(v) != 2:
            raise ResultsError(f"{where}: {key}.ci.{ci_key} is {str(v)[:40]!r}, expected an interval [lo, hi] or null")
        lo, hi = (_number(x, where, f"{key}.ci.{ci_key}", k != "relative_drop") for x in v)
        if lo > hi:
            raise ResultsError(f"{where}: {key}.ci.{ci_key} is [{lo}, {hi}], lo above hi")
        ci[k] = (lo, hi)
    return CorruptionFigures(name, h, tuple(t for t in TYPES if t in types), tuple(sorted(sevs)), worst, values, ci,
                             metric)


def robustness_tables(records: list[dict[str, Any]], task: Optional[str] = None) -> list[Table]:
    """One table per (corruption protocol, hash, types, severities) of the records with ``summary.corruptions``
    (of leaderboard family ``task`` when given), the latest run of each model / weights / protocol / dataset."""
    from satbench.leaderboard.layout import table_for_record

    groups: "OrderedDict[tuple, list[tuple[dict[str, Any], CorruptionFigures]]]" = OrderedDict()
    for rec in records:
        fig = corruption_figures(rec)
        if fig is None or (task is not None and table_for_record(rec) != task):
            continue
        groups.setdefault(fig.group, []).append((rec, fig))
    tables = []
    used: set[str] = set()
    for (name, h, types, sevs, metric), members in sorted(groups.items(), key=lambda kv: kv[0]):
        key = f"robustness-{h[:12]}"
        n = 2
        while key in used:
            key, n = f"robustness-{h[:12]}-{n}", n + 1
        used.add(key)
        rows = []
        runs = latest_runs([r for r, _ in members])
        for rec, count in sorted(runs, key=lambda x: (R.text(x[0], "task"), ds_sort_key(R.text(x[0], "dataset", "name")),
                                                       R.text(x[0], "model"))):
            f = corruption_figures(rec)  # latest_runs may hand back copies
            assert f is not None
            spec = spec_for_record(rec)
            dataset = column_of(spec, rec)[2] if spec is not None else R.text(rec, "dataset", "name")
            prov = R.provenance_line(rec)
            corr = f"{f.protocol} {f.protocol_hash[:12]}"
            labels = {"model": R.text(rec, "model"), "source": f"satbench, {R.weights_label(rec)}",
                      "protocol": f"{R.text(rec, 'task')} · {R.protocol_name(rec) or '?'}", "dataset": dataset,
                      "corruptions": corr, "set": f.set_text(), "worst": f.worst_type,
                      "settings": f"corruptions {corr}: {f.set_text()}; worst type {f.worst_type}"}
            cells = {k: Cell(f.values[k], ci=f.ci[k], runs=count, record=prov, dataset=dataset)
                     for k, _, _ in COLUMNS}
            rows.append(Row("run", labels, cells))
        notes = [
            "mCA: mean top-1 over the (type, severity) conditions evaluated; relative drop: 100 (clean - mCA) / clean, "
            "in percent of clean; worst type: the type with the lowest mean top-1 over its severities (its top-1 "
            "shown); only the test split is corrupted, the train split is clean",
            "intervals: percentile-bootstrap intervals over the test images (summary.corruptions.ci), the same "
            "resamples for the clean and every corrupted column",
            "a table holds one corruption protocol (name and hash) and one set of types and severities: runs of "
            "another are in a table of their own"]
        if any(n > 1 for _, n in runs):
            notes.append("* the latest of several runs of the same model / weights / protocol / dataset")
        title = (f"Corruption robustness (%{'' if metric == 'top1' else ', mIoU'}): {name} {h[:12]}, "
                 f"{', '.join(types)} x severities {', '.join(map(str, sevs))}")
        label = METRICS[metric]
        if metric != "top1":
            notes[0] = notes[0].replace("top-1", label) + " (segmentation: mIoU over the val tiles)"
        tables.append(Table(key, title, [("model", "model"), ("source", "source"), ("protocol", "task / protocol"),
                                         ("dataset", "dataset"), ("corruptions", "corruption protocol"),
                                         ("set", "types x severities"), ("worst", "worst type")],
                            [(k, header.replace("top-1", label)) for k, _, header in COLUMNS], rows, notes))
    return tables
