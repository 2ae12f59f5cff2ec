"""Repeated runs and their aggregate records: ``--seeds`` (trained probes) and subset draws (``--train-fraction`` /
``--shots`` with ``--draws``). The one place these loops and aggregates live; :func:`satbench.api.run` calls it.

Layout (one record per run, each with its own prediction sidecar, plus one aggregate record without a sidecar):

* ``--seeds S1 S2 ...``: the task runs once per seed (:meth:`~satbench.eval.task.Task.seed_options`: the training
  seed, and a sub-folder ``seed<S>`` of ``--output-dir`` / ``--work-dir``), in this process, one after another; each
  seed's record is written as soon as it exists (``extra.seed_group = {"id", "seed", "seeds"}``). Then the aggregate:
  same task, model, weights, protocol and dataset, ``summary.seeds`` (:func:`satbench.stats.seeds.aggregate`: n,
  values, mean, sample std, min, max, IQM from 4 seeds), the mean as the headline number, ``extra.aggregate_of =
  "seeds"``, ``extra.seed_group`` and ``extra.seed_records`` (the per-seed record files).
* Subsets: the task returns one record per (subset, draw), all written first; with more than one draw each member
  gets ``extra.draw_group = {"id", "draw", "draws"}`` and an aggregate per fraction / shot count follows
  (``summary.draws``, ``extra.aggregate_of = "draws"``, ``extra.draw_records``).

The leaderboard shows an aggregate instead of its members (:func:`satbench.leaderboard.runs.group_member`).
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

#: Summary numbers averaged into an aggregate when every member has them.
AVERAGED = ("top1", "top5", "top1_avg", "top5_avg", "mIoU")
#: Summary entries copied when every member has the same value.
COPIED = ("k", "crop")
ROBUSTNESS = ("worst_scale_top1", "drop_to_smallest_scale", "auc_log2_scale")


def is_aggregate(record: Any) -> bool:
    """True for a seeds / draws aggregate record."""
    return bool((record.get("extra") or {}).get("aggregate_of"))


def headline_metric(task_name: str) -> str:
    from satbench.eval.task import get_task

    h = get_task(task_name).headline
    return h.metric if h is not None else "top1"


# ---------------------------------------------------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------------------------------------------------
def run_seeds(task: Any, model: Any, dataset: Any, protocol: Any, options: Any, seeds: Sequence[int], *,
              write: bool = True, results_dir: Any = None) -> Any:
    """Run ``task`` once per seed and return the aggregate record (the per-seed records in ``aggregate["_members"]``;
    None on the non-main processes of a torchrun job). Each record is written as soon as it exists."""
    from satbench.errors import SatbenchError

    group = uuid.uuid4().hex[:12]
    members = []
    for seed in seeds:
        rec = task.run(model, dataset, protocol, task.seed_options(options, seed))
        if rec is None:
            continue
        if isinstance(rec, list):
            raise SatbenchError(f"task {task.name} returned several records for one seed")
        rec["extra"]["seed_group"] = {"id": group, "seed": int(seed), "seeds": [int(s) for s in seeds]}
        if write:
            rec.write(results_dir)
        members.append(rec)
    if not members:
        return None
    agg = aggregate(members, "seeds", group, [int(s) for s in seeds])
    if write:
        agg.write(results_dir)
    agg["_members"] = members
    return agg


# ---------------------------------------------------------------------------------------------------------------------
# Subset draws
# ---------------------------------------------------------------------------------------------------------------------
def _subset_key(rec: Any) -> tuple:
    sub = rec["dataset"].get("train_subset") or {}
    return sub.get("kind"), sub.get(sub.get("kind", ""))


def finish_subset_records(records: Sequence[Any], *, write: bool = True, results_dir: Any = None) -> list[Any]:
    """Group a task's per-(subset, draw) records by fraction / shot count, write them, then one draws aggregate per
    group of several draws; returns one record per fraction / shot count (the aggregate, or the single draw)."""
    groups: "OrderedDict[tuple, list[Any]]" = OrderedDict()
    for rec in records:
        groups.setdefault(_subset_key(rec), []).append(rec)
    ids = {key: uuid.uuid4().hex[:12] for key, members in groups.items() if len(members) > 1}
    for key, members in groups.items():
        if key in ids:
            for rec in members:
                sub = rec["dataset"]["train_subset"]
                rec["extra"]["draw_group"] = {"id": ids[key], "draw": int(sub["draw"]), "draws": len(members)}
    if write:
        for rec in records:
            rec.write(results_dir)
    out = []
    for key, members in groups.items():
        if key not in ids:
            out.append(members[0])
            continue
        agg = aggregate(members, "draws", ids[key], [int(r["dataset"]["train_subset"]["draw"]) for r in members])
        if write:
            agg.write(results_dir)
        agg["_members"] = members
        out.append(agg)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# The aggregate record
# ---------------------------------------------------------------------------------------------------------------------
def _same(values: list[Any]) -> bool:
    return all(v == values[0] for v in values)


def _mean_of(members: Sequence[Any], get: Any) -> Optional[float]:
    vals = [get(m) for m in members]
    if not vals or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in vals):
        return None
    return float(np.mean(vals))


def aggregate(members: Sequence[Any], kind: str, group: str, labels: Sequence[int]) -> Any:
    """The aggregate record of ``members`` (``kind`` ``"seeds"`` or ``"draws"``; ``labels``: each member's seed or
    draw). Headline = the mean of the members' headline numbers; spread in ``summary[kind]``."""
    from satbench.records.results import make_record
    from satbench.stats.seeds import aggregate as spread

    first = members[0]
    task = first["task"]
    metric = headline_metric(task)
    values = [m["summary"].get(metric) for m in members]
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
        from satbench.errors import ResultsError

        raise ResultsError(f"cannot aggregate {kind}: a run has no numeric summary.{metric} ({values})")
    summary: dict[str, Any] = {}
    for key in AVERAGED:
        v = _mean_of(members, lambda m, key=key: m["summary"].get(key))
        if v is not None:
            summary[key] = v
    summary[metric] = float(np.mean(values))
    for key in COPIED:
        vals = [m["summary"].get(key) for m in members]
        if vals[0] is not None and _same(vals):
            summary[key] = vals[0]
    scales = [tuple(sorted((m["summary"].get("top1_per_scale") or {}).keys())) for m in members]
    if scales[0] and _same(scales):
        summary["top1_per_scale"] = {s: _mean_of(members, lambda m, s=s: m["summary"]["top1_per_scale"][s])
                                     for s in first["summary"]["top1_per_scale"]}
    if all(isinstance(m["summary"].get("robustness"), dict) for m in members):
        rob = {n: _mean_of(members, lambda m, n=n: m["summary"]["robustness"].get(n)) for n in ROBUSTNESS}
        summary["robustness"] = {k: v for k, v in rob.items() if v is not None}
    files = [Path(m["_path"]).name if m.get("_path") else None for m in members]
    if kind == "seeds":
        summary["seeds"] = spread(values, labels)
        extra = {"aggregate_of": "seeds", "seed_group": {"id": group, "seeds": list(labels)},
                 "seed_records": files}
    else:
        subs = [m["dataset"]["train_subset"] for m in members]
        d = spread(values)
        d.update({"kind": subs[0]["kind"], subs[0]["kind"]: subs[0][subs[0]["kind"]], "draws": list(labels),
                  "subset_sha256": [s["sha256"] for s in subs], "subset_n": [s["n"] for s in subs]})
        summary["draws"] = d
        extra = {"aggregate_of": "draws", "draw_group": {"id": group, "draws": len(members)}, "draw_records": files}
    extra["member_ids"] = [m["id"] for m in members]
    extra["metric"] = metric
    dataset = dict(first["dataset"])
    if kind == "draws":
        s0 = dataset["train_subset"]
        dataset["train_subset"] = {"kind": s0["kind"], s0["kind"]: s0[s0["kind"]], "seed": s0["seed"],
                                   "draws": list(labels), "n": s0["n"], "n_parent": s0["n_parent"],
                                   "actual_fraction": s0["actual_fraction"],
                                   "parent_split_sha256": s0["parent_split_sha256"],
                                   "subset_sha256": [s["sha256"] for s in subs], "aggregate": True}
    metrics: dict[str, Any] = {
        "aggregate": {"kind": kind, "metric": metric, "n": len(members)},
        "members": [{"id": m["id"], "file": f, ("seed" if kind == "seeds" else "draw"): lab,
                     metric: m["summary"].get(metric), "ci": ((m["summary"].get("ci") or {}).get(metric))}
                    for m, f, lab in zip(members, files, labels)],
    }
    for key in ("k_report", "n_val", "n_test", "num_classes"):
        vals = [(m.get("metrics") or {}).get(key) for m in members]
        if vals[0] is not None and _same(vals):
            metrics[key] = vals[0]
    if not _same([m["protocol"].get("hash") for m in members]):
        metrics["note"] = "the members' protocol hashes differ; the first member's protocol is recorded"
    total = _mean_of(members, lambda m: (m.get("timings") or {}).get("total_s"))
    timings = {"total_s": round(total * len(members), 3)} if total is not None else {}
    agg = make_record(task=task, model=first["model"], weights=first["weights"], protocol=first["protocol"],
                      dataset=dataset, metrics=metrics, summary=summary, extractor=first.get("extractor") or {},
                      timings=timings, extra=extra)
    if any(isinstance(m.get("features"), dict) and m["features"].get("collapsed") for m in members):
        agg["features"] = {"collapsed": True, "status": "a member's features collapsed (recorded with "
                                                        "--allow-collapsed-features)", "views": {}}
    return agg


def describe_aggregate(record: Any) -> str:
    """The terminal table of an aggregate record: one row per member, then mean +- std (n), min / max, IQM."""
    from tabulate import tabulate

    from satbench.stats import formatting as fmt

    m = record["metrics"]
    kind = m["aggregate"]["kind"]
    metric = m["aggregate"]["metric"]
    label = "seed" if kind == "seeds" else "draw"
    rows = [[x.get(label), fmt.value_ci(x.get(metric), x.get("ci")), x.get("file") or x.get("id")]
            for x in m["members"]]
    agg = record["summary"][kind]
    head = (f"{record['dataset'].get('name')}: {record['model']} {record['task']} protocol {record['protocol']['name']}"
            f", {agg['n']} {kind}")
    sub = record["dataset"].get("train_subset")
    if isinstance(sub, dict):
        what = (f"{100 * float(sub['fraction']):g}%" if sub.get("kind") == "fraction"
                else f"{sub.get('shots')} shots per class")
        head += f", train subset {what} ({sub.get('n')} of {sub.get('n_parent')} images, seed {sub.get('seed')})"
    lines = [head, tabulate(rows, headers=[label, f"{metric} [95% CI]", "record"], disable_numparse=True)]
    tail = f"{metric}: {fmt.seeds(agg)}, min {agg['min']:.2f}, max {agg['max']:.2f}"
    if "iqm" in agg:
        tail += f", IQM {agg['iqm']:.2f}"
    lines.append(tail)
    return "\n".join(lines)
