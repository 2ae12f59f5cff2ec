"""One leaderboard table: the runs of one task headline next to the papers' rows (:func:`task_table`), and the
per-scale table of a multi-scale kNN (:func:`knn_scale_table`)."""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any, Optional

from satbench.errors import ResultsError
from satbench.records.checks import value_problem
from satbench.leaderboard import runs as R
from satbench.leaderboard.layout import (DELTA_RULE, Cell, Row, Table, TaskSpec, column_of, dataset_kind, ds_label,
                                         ds_sort_key, entry_label, home_kind, latest_runs, reference_kinds, run_labels,
                                         table_for_record, table_key, table_title, task_specs)
from satbench.leaderboard.references import ref_key, ref_label, ref_source, ref_values



def family_records(records: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    """The records of protocol family ``task`` (:func:`table_for_record`), each checked: a headline that is not a
    number, or a record failing the readers' sanity check (records given directly, API), is an error naming the
    file, before any output."""
    spec = task_specs()[task]
    recs = [r for r in records if table_for_record(r) == task]
    for r in recs:
        spec.value(r)
        problem = value_problem(r)
        if problem:
            raise ResultsError(f"{R.where(r)}: {problem}")
    return recs


def task_table(records: list[dict[str, Any]], task: str, refs: list[dict[str, Any]],
               kind: Optional[str] = None) -> Table:
    """The table of protocol family ``task`` on datasets of ``kind`` (default: the family's home kind,
    :func:`home_kind`): the papers' rows on datasets of that kind, then the family's runs on datasets of that kind.
    A run never sits in another family's table, nor beside papers' numbers of another dataset kind."""
    spec = task_specs()[task]
    home = home_kind(spec, refs)
    kind = kind or home
    recs = [r for r in family_records(records, task) if dataset_kind(r, spec) == kind]
    runs = latest_runs(recs)
    ref_tables = [(ref, ref[spec.reference]) for ref in refs if isinstance(ref.get(spec.reference), dict)]
    if kind not in reference_kinds(spec, refs):
        ref_tables = []
    columns: dict[str, str] = {}
    for ref, t in ref_tables:
        for col in list(ref_values(spec, t)):
            ds, _, crop = col.partition("@")
            if _ref_kind(spec, ds) != kind:
                continue
            columns[col] = f"{ds_label(ds)} {crop}".strip()
    for rec, _ in runs:
        key, _, header = column_of(spec, rec)
        columns[key] = header
    value_columns = sorted(columns.items(), key=lambda kv: ds_sort_key(kv[0].split("~")[-1] if "~" in kv[0] else kv[0]) +
                           (kv[0],))
    rows: list[Row] = []
    notes: list[str] = []
    for ref, t in ref_tables:
        vals = {c: v for c, v in ref_values(spec, t).items() if c in columns}
        proto = t.get("protocol") or ""
        for key in ref["models"]:
            cells = {c: Cell(v[key], dataset=c) for c, v in vals.items() if isinstance(v.get(key), (int, float))}
            if cells:
                rows.append(Row("paper", {"model": ref_label(ref, key), "source": f"paper ({ref_source(ref)})",
                                          "protocol": proto, "settings": "as published", "vs": ""}, cells))
        if t.get("metric"):
            notes.append(f"paper ({ref_source(ref)}): {t['metric']}")
        if t.get("note"):
            notes.append(f"paper ({ref_source(ref)}): {t['note']}")
    variants: "OrderedDict[str, Row]" = OrderedDict()
    for rec, n in runs:
        label = entry_label(rec, spec)
        row = variants.get(label)
        if row is None:
            row = variants[label] = Row("run", run_labels(spec, rec), {})
        key, ref_col, _ = column_of(spec, rec)
        cell = Cell(spec.value(rec), ci=R.interval(rec, spec.metric), runs=n, record=R.provenance_line(rec),
                    dataset=key, spread=R.spread(rec))
        reasons = compare_cell(spec, rec, ref_col, ref_tables, cell)
        if cell.runs > 1:
            notes.append(f"* {label} on {columns[key]}: latest of {n} runs ({R.text(rec, 'provenance', 'date')})")
        row.cells[key] = cell
        for e in reasons:
            if e not in row.exclusions:
                row.exclusions.append(e)
    for row in variants.values():
        has_delta = any(c.delta is not None for c in row.cells.values())
        if row.exclusions:
            row.labels["vs"] = ("like for like, except " if has_delta else "no delta: ") + \
                "; ".join(e.text for e in row.exclusions)
        elif has_delta:
            row.labels["vs"] = "like for like"
        else:
            row.labels["vs"] = "no paper number"
        rows.append(row)
    if any(r.kind == "run" for r in rows):
        notes.insert(0, DELTA_RULE if any(r.kind == "paper" for r in rows) else NO_PAPER_NOTE)
    interval_notes(rows, notes)
    label_columns = [("model", "model"), ("source", "source"), ("protocol", "protocol"), ("settings", "settings"),
                     ("vs", "vs paper")]
    return Table(table_key(task, kind, home), table_title(spec, kind), label_columns, value_columns, rows, notes)


def _ref_kind(spec: TaskSpec, ds: str) -> str:
    """The kind of a dataset of a reference table (the catalog's; unknown: the family's first)."""
    from satbench.data.catalog import find_dataset_spec

    cat = find_dataset_spec(ds)
    return cat.kind if cat is not None else (spec.kinds[0] if spec.kinds else "scene")


#: The note of a table without papers' numbers (a family or dataset kind no paper reports).
NO_PAPER_NOTE = ("no paper reports this protocol family on these datasets: runs are shown without a delta (the papers' "
                 "numbers sit in the table of their own protocol and datasets)")


def interval_notes(rows: list[Row], notes: list[str]) -> None:
    cells = [c for r in rows for c in r.cells.values()]
    if any(c.ci is not None and c.spread is None for c in cells):
        notes.append("intervals: 95% percentile-bootstrap confidence intervals over the test images, from the record "
                     "(summary.ci)")
    if any(c.spread is not None for c in cells):
        notes.append("mean ± sd (n=…): a seeds / draws aggregate record: the mean over n runs ± their sample standard "
                     "deviation (summary.seeds / summary.draws); the runs' own records hold their intervals")


def compare_cell(spec: TaskSpec, rec: dict[str, Any], ref_col: str, ref_tables: list[tuple[dict[str, Any], dict[str, Any]]],
             cell: Cell) -> list[R.Exclusion]:
    """Fill ``cell.delta`` / ``cell.paper`` when like for like; return the exclusions when a paper number exists."""
    model = R.text(rec, "model")
    candidates = []
    for ref, t in ref_tables:
        key = ref_key(ref, model)
        paper = ref_values(spec, t).get(ref_col, {}).get(key) if key else None
        if isinstance(paper, (int, float)):
            candidates.append((t.get("protocol") or spec.paper_protocol, float(paper)))
    if not candidates:
        return []
    # the reference produced under the run's own protocol, else the first one (for the reasons)
    name = R.protocol_name(rec)
    proto, paper = next(((p, v) for p, v in candidates if re.fullmatch(p, name)), candidates[0])
    reasons = R.exclusions(rec, proto, recipe_switches=spec.recipe_switches, full_iters=spec.full_iters)
    if not reasons and cell.value is not None:
        cell.delta, cell.paper = cell.value - paper, paper
    return reasons


def knn_scale_table(records: list[dict[str, Any]], task: str) -> Table:
    """Per-scale top-1 of the latest runs (the papers give no per-scale numbers), with each run's reported k."""
    spec = task_specs()[task]
    runs = latest_runs(family_records(records, task))
    scales: set[str] = set()
    for r, _ in runs:
        per = R.section(r, "summary").get("top1_per_scale") or {}
        if isinstance(per, dict):
            scales |= set(per)

    def _float(s: str) -> float:
        try:
            return float(s)
        except ValueError:
            return float("-inf")

    ordered = sorted(scales, key=_float, reverse=True)
    rows = []
    robust = False
    for r, n in sorted(runs, key=lambda x: (ds_sort_key(R.protocol_dataset(x[0])), R.is_subset(x[0]), R.text(x[0], "model"))):
        per = R.section(r, "summary").get("top1_per_scale") or {}
        prov = R.provenance_line(r)
        cells = {f"s{s}": Cell(R.number(r, "summary", "top1_per_scale", s), ci=R.scale_interval(r, s), runs=n,
                               record=prov) for s in ordered if isinstance(per, dict) and s in per}
        cells["avg"] = Cell(spec.value(r), ci=R.interval(r, spec.metric), runs=n, record=prov, spread=R.spread(r))
        for name in ROBUSTNESS_COLUMNS:
            v = R.number(r, "summary", "robustness", name)
            if v is not None:
                robust = True
                cells[name] = Cell(v, ci=R.interval(r, name), runs=n, record=prov)
        k = R.reported_k(r)
        rows.append(Row("run", {"dataset": column_of(spec, r)[2], "entry": entry_label(r, spec),
                                "hash": R.text(r, "protocol", "hash")[:12], "k": "" if k is None else str(k),
                                "runs": str(n), **run_labels(spec, r)}, cells))
    notes = ["k: the k of each run's reported numbers (summary.k); no paper gives per-scale numbers"]
    if robust:
        notes.append("scale robustness at the reported k (summary.robustness): worst = lowest per-scale top-1; "
                     "drop = top-1 at scale 1.0 (else the largest scale) minus top-1 at the smallest scale; "
                     "AUC = area under top-1 vs log2(scale) divided by its span (mean top-1 over log-scale)")
    if any(n > 1 for _, n in runs):
        notes.append("* the latest of several runs of the same model / weights / protocol / dataset")
    interval_notes(rows, notes)
    columns = [(f"s{s}", f"scale {s}") for s in ordered] + [("avg", "mean")]
    if robust:
        columns += [(name, header) for name, header in ROBUSTNESS_COLUMNS.items()]
    return Table(f"{task}_per_scale", "kNN top-1 (%) per scale (latest run of each model / weights / protocol / dataset)",
                 [("dataset", "dataset"), ("entry", "run"), ("hash", "protocol hash"), ("k", "k")],
                 columns, rows, notes)


#: The scale-robustness summaries of a multi-scale kNN record (``summary.robustness``) and their column headers.
ROBUSTNESS_COLUMNS = {"worst_scale_top1": "worst scale", "drop_to_smallest_scale": "drop to smallest",
                      "auc_log2_scale": "AUC log2 scale"}
