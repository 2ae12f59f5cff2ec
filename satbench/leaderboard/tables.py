"""Leaderboard tables: result records + the papers' reference numbers -> format-agnostic :class:`Table` objects.

Layout: one row per *entry*, one column per dataset (segmentation: per dataset and crop). An entry is either a paper
result (labelled model + "paper" + source) or a satbench run (model + weights + protocol + settings); the two never
share a row, so a paper number can never be read as a run's. A run shows ``value (delta)`` only when it is like for like
with the paper row of the same model (see :data:`DELTA_RULE` and :func:`satbench.leaderboard.runs.exclusions`); a run
that is not gets its reasons in the "vs paper" column. Of several runs of the same (model, weights, protocol hash,
dataset) the latest is shown, marked ``*``.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from satbench.errors import ResultsError
from satbench.records.checks import date_key, value_problem
from satbench.runtime.resources import reference_dir
from satbench.leaderboard import runs as R


# ----------------------------------------------------------------------------------------------------------------------
# The tables: one per task headline (from the task registry) and the dataset facts (from the catalog)
# ----------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TaskSpec:
    """How a table appears on the leaderboard (built from the registered tasks' :class:`~satbench.eval.task.Headline`).

    ``tasks``: the record tasks shown in this table (``linear`` and ``cached-linear`` share one); ``title``: table
    title; ``metric``: the ``summary`` key of the headline number (also its ``summary.ci`` key); ``value``: the getter
    of that number; ``reference``: the table key in ``results/reference/*.json``; ``paper_protocol``: regex over the
    protocol name the papers used (a reference table's own ``protocol`` wins); ``by_crop``: columns are (dataset,
    crop); ``per_scale``: records carry ``summary.top1_per_scale`` (adds the per-scale table and plot);
    ``recipe_switches``: params that, when set, depart from the recipe; ``full_iters``: the recipe's iterations (fewer =
    a short run; ``protocol.params.recipe_iters`` wins).
    """

    title: str
    metric: str
    value: Callable[[dict[str, Any]], Optional[float]]
    reference: str
    paper_protocol: str
    by_crop: bool = False
    per_scale: bool = False
    recipe_switches: tuple[str, ...] = ()
    full_iters: Optional[int] = None
    tasks: tuple[str, ...] = ()


def _summary(key: str) -> Callable[[dict[str, Any]], Optional[float]]:
    return lambda rec: R.number(rec, "summary", key)


def task_specs() -> "OrderedDict[str, TaskSpec]":
    """The leaderboard's tables, in task-registry order (knn, finetune, linear, segmentation, then plug-ins), one per
    headline table; tasks sharing a table (``linear`` and ``cached-linear``) are shown together."""
    from satbench.eval.task import list_tasks

    order = {"knn": 0, "finetune": 1, "linear": 2, "segmentation": 3}
    groups: "OrderedDict[str, list[Any]]" = OrderedDict()
    for t in sorted((t for t in list_tasks() if t.headline is not None),
                    key=lambda t: (order.get(t.headline.table, 99), t.headline.table, t.name != t.headline.table)):
        groups.setdefault(t.headline.table, []).append(t)
    out: "OrderedDict[str, TaskSpec]" = OrderedDict()
    for table, tasks in groups.items():
        h = tasks[0].headline
        out[table] = TaskSpec(h.title, h.metric, _summary(h.metric), h.reference_key or table,
                              h.paper_protocol or (re.escape(h.reference_protocol) if h.reference_protocol else r"$^"),
                              by_crop=h.by_crop, per_scale=h.per_scale, recipe_switches=tuple(h.recipe_switches),
                              full_iters=h.full_iters, tasks=tuple(t.name for t in tasks))
    return out


def table_for_record(rec: dict[str, Any]) -> Optional[str]:
    """The key of the table a record belongs to (by its task), or None."""
    return next((k for k, s in task_specs().items() if str(rec.get("task")) in s.tasks), None)


def spec_for_record(rec: dict[str, Any]) -> Optional[TaskSpec]:
    """The table a record belongs to (by its task)."""
    key = table_for_record(rec)
    return task_specs()[key] if key is not None else None


def per_scale_tasks() -> list[str]:
    """Tables with a per-scale table and plot."""
    return [name for name, spec in task_specs().items() if spec.per_scale]


def _dataset_facts() -> tuple[dict[str, int], dict[str, str]]:
    from satbench.data.catalog import list_datasets

    specs = list_datasets()
    return {s.name: s.order for s in specs}, {s.name: s.label for s in specs}


DELTA_RULE = ("delta (in brackets) = run - paper row of the same model, shown only for like-for-like runs: the paper's "
              "protocol without overrides, released weights (non-random, with a sha256), the full dataset with its official split, "
              "the full training schedule, and train != val; every other run says why in 'vs paper'")


# ----------------------------------------------------------------------------------------------------------------------
# Table model
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One number: value, optional 95% interval, delta to the paper, how many runs it is the latest of, the paper
    value compared with and the record it comes from (:func:`runs.provenance_line`)."""

    value: Optional[float]
    ci: Optional[tuple[float, float]] = None
    delta: Optional[float] = None
    paper: Optional[float] = None
    runs: int = 1
    record: Optional[dict[str, str]] = None
    dataset: str = ""
    #: an aggregate record's spread: (sample std or None, n, "seeds" | "draws"); the value is then the mean
    spread: Optional[tuple[Optional[float], int, str]] = None


@dataclass
class Row:
    """``kind`` is ``paper`` or ``run``; ``labels`` maps label-column keys to text; ``cells`` value-column keys to cells."""

    kind: str
    labels: dict[str, str]
    cells: dict[str, Cell]
    exclusions: list[R.Exclusion] = field(default_factory=list)


@dataclass
class Table:
    """A format-agnostic table: ``label_columns`` and ``value_columns`` are ``(key, header)`` pairs."""

    key: str
    title: str
    label_columns: list[tuple[str, str]]
    value_columns: list[tuple[str, str]]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    @property
    def headers(self) -> list[str]:
        return [h for _, h in self.label_columns] + [h for _, h in self.value_columns]


# ----------------------------------------------------------------------------------------------------------------------
# References
# ----------------------------------------------------------------------------------------------------------------------
def load_references(folder: Optional[Path] = None) -> list[dict[str, Any]]:
    """Every ``*.json`` reference file (with its ``_name``), sorted by file name."""
    folder = Path(folder) if folder is not None else reference_dir()
    out = []
    for p in sorted(folder.glob("*.json")):
        try:
            ref = json.loads(p.read_text())
        except (json.JSONDecodeError, OSError, UnicodeDecodeError) as exc:
            raise ResultsError(f"reference file {p} is not readable JSON ({exc})") from None
        if not isinstance(ref, dict) or not isinstance(ref.get("models"), dict):
            raise ResultsError(f"reference file {p} must be a mapping with 'models' and tables")
        ref["_name"] = p.stem
        out.append(ref)
    return out


def ref_key(ref: dict[str, Any], model: str) -> Optional[str]:
    """The reference model key whose ``match`` regex matches the satbench model name."""
    for key, m in ref["models"].items():
        if re.search(m.get("match", f"^{re.escape(key)}$"), model):
            return key
    return None


def ref_source(ref: dict[str, Any]) -> str:
    """The short source name: ``SatDINO README``, ``Scale-MAE paper`` (the source text up to its first bracket)."""
    return str(ref.get("source") or ref["_name"]).split(" (")[0].strip()


def ref_label(ref: dict[str, Any], key: str) -> str:
    label = str(ref["models"][key].get("label", key))
    suffix = f" ({ref_source(ref)})"
    return label[: -len(suffix)] if label.endswith(suffix) else label


def _ref_values(spec: TaskSpec, table: dict[str, Any]) -> dict[str, dict[str, float]]:
    """column key -> {reference model key: value}."""
    out: dict[str, dict[str, float]] = {}
    for ds, vals in (table.get("values") or {}).items():
        if spec.by_crop:
            for crop, v in vals.items():
                out[f"{ds}@{crop}"] = v
        else:
            out[ds] = vals
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------------------------------------------------
def run_key(rec: dict[str, Any]) -> tuple:
    """What makes two runs "the same run": model, weights, protocol (name and hash), dataset, crop, the train subset
    (fraction / shots) and whether it is a seeds / draws aggregate of how many runs."""
    agg = R.spread(rec)
    return (R.text(rec, "model"), R.weights_tag(rec), R.text(rec, "protocol", "name"), R.text(rec, "protocol", "hash"),
            R.text(rec, "dataset", "name"), str(R.section(rec, "summary").get("crop", "")), R.subset_label(rec) or "",
            "" if agg is None else f"{agg[1]} {agg[2]}")


def latest_runs(records: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """``(latest record, number of runs)`` per (model, weights, protocol hash, dataset, train subset, aggregate),
    oldest group first. The member runs of a seeds / draws aggregate are left out when the aggregate is there
    (:func:`runs.without_aggregated_members`): the aggregate stands for them."""
    groups: "OrderedDict[tuple, list[dict[str, Any]]]" = OrderedDict()
    for r in sorted(R.without_aggregated_members(records), key=date_key):
        groups.setdefault(run_key(r), []).append(r)
    return [(g[-1], len(g)) for g in groups.values()]


def _ds_sort(name: str) -> tuple:
    ds, _, crop = name.partition("@")
    order = _dataset_facts()[0]
    return (order.get(ds, 10_000), ds, int(crop) if crop.isdigit() else 0, crop)


def ds_label(name: str) -> str:
    """The catalog's label of a dataset (the name itself for datasets outside the catalog)."""
    return _dataset_facts()[1].get(name, name)


def _column(spec: TaskSpec, rec: dict[str, Any]) -> tuple[str, str, str]:
    """(column key, the paper column it compares with, header) of a run."""
    name, pd = R.text(rec, "dataset", "name"), R.protocol_dataset(rec)
    subset = R.is_subset(rec)
    key = name if not subset else f"{name}~{pd}"
    header = ds_label(name) if not subset else f"{name} (subset of {ds_label(pd)})"
    ref_col = pd
    if spec.by_crop:
        crop = R.text(rec, "summary", "crop")
        key, ref_col, header = f"{key}@{crop}", f"{pd}@{crop}", f"{header} {crop}"
    return key, ref_col, header


def entry_label(rec: dict[str, Any], spec: Optional[TaskSpec] = None) -> str:
    """Model + weights + protocol + settings, e.g.
    ``satdino-vit_small-16 · random weights (seed 0) · satdino-knn-v1 · k=5``."""
    extra = R.settings(rec, spec.recipe_switches, spec.full_iters) if spec else R.settings(rec)
    return " · ".join([R.text(rec, "model"), R.weights_label(rec), R.protocol_name(rec) or "?"] + extra)


def _run_labels(spec: TaskSpec, rec: dict[str, Any]) -> dict[str, str]:
    k = R.reported_k(rec)
    return {"model": R.text(rec, "model"), "source": f"satbench, {R.weights_label(rec)}",
            "protocol": R.protocol_name(rec), "settings": "; ".join(R.settings(rec, spec.recipe_switches, spec.full_iters)),
            "vs": "", "k": "" if k is None else str(k)}


def record_settings(rec: dict[str, Any]) -> list[str]:
    """:func:`runs.settings` with the record's task's recipe rules (segmentation: iterations, switches)."""
    spec = spec_for_record(rec)
    return R.settings(rec, spec.recipe_switches, spec.full_iters) if spec else R.settings(rec)


def _check_task(task: Optional[str]) -> None:
    specs = task_specs()
    if task is not None and task not in specs:
        raise ResultsError(f"unknown leaderboard task {task!r}; expected one of {', '.join(specs)}")


def task_table(records: list[dict[str, Any]], task: str, refs: list[dict[str, Any]]) -> Table:
    """The main table of ``task``: paper rows (every model of every reference with this task), then run rows."""
    spec = task_specs()[task]
    recs = [r for r in records if r.get("task") in spec.tasks]
    for r in recs:
        spec.value(r)  # a headline that is not a number is an error naming the file, before any output
        problem = value_problem(r)  # records given directly (API) pass the readers' sanity check too
        if problem:
            raise ResultsError(f"{R.where(r)}: {problem}")
    runs = latest_runs(recs)
    ref_tables = [(ref, ref[spec.reference]) for ref in refs if isinstance(ref.get(spec.reference), dict)]
    columns: dict[str, str] = {}
    for ref, t in ref_tables:
        for col in _ref_values(spec, t):
            ds, _, crop = col.partition("@")
            columns[col] = f"{ds_label(ds)} {crop}".strip()
    for rec, _ in runs:
        key, _, header = _column(spec, rec)
        columns[key] = header
    value_columns = sorted(columns.items(), key=lambda kv: _ds_sort(kv[0].split("~")[-1] if "~" in kv[0] else kv[0]) +
                           (kv[0],))
    rows: list[Row] = []
    notes: list[str] = []
    for ref, t in ref_tables:
        vals = _ref_values(spec, t)
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
            row = variants[label] = Row("run", _run_labels(spec, rec), {})
        key, ref_col, _ = _column(spec, rec)
        cell = Cell(spec.value(rec), ci=R.interval(rec, spec.metric), runs=n, record=R.provenance_line(rec),
                    dataset=key, spread=R.spread(rec))
        reasons = _compare(spec, rec, ref_col, ref_tables, cell)
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
        notes.insert(0, DELTA_RULE)
    _interval_notes(rows, notes)
    label_columns = [("model", "model"), ("source", "source"), ("protocol", "protocol"), ("settings", "settings"),
                     ("vs", "vs paper")]
    return Table(task, spec.title, label_columns, value_columns, rows, notes)


def _interval_notes(rows: list[Row], notes: list[str]) -> None:
    cells = [c for r in rows for c in r.cells.values()]
    if any(c.ci is not None and c.spread is None for c in cells):
        notes.append("intervals: 95% percentile-bootstrap confidence intervals over the test images, from the record "
                     "(summary.ci)")
    if any(c.spread is not None for c in cells):
        notes.append("mean ± sd (n=…): a seeds / draws aggregate record: the mean over n runs ± their sample standard "
                     "deviation (summary.seeds / summary.draws); the runs' own records hold their intervals")


def _compare(spec: TaskSpec, rec: dict[str, Any], ref_col: str, ref_tables: list[tuple[dict[str, Any], dict[str, Any]]],
             cell: Cell) -> list[R.Exclusion]:
    """Fill ``cell.delta`` / ``cell.paper`` when like for like; return the exclusions when a paper number exists."""
    model = R.text(rec, "model")
    candidates = []
    for ref, t in ref_tables:
        key = ref_key(ref, model)
        paper = _ref_values(spec, t).get(ref_col, {}).get(key) if key else None
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
    runs = latest_runs([r for r in records if r.get("task") in spec.tasks])
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
    for r, n in sorted(runs, key=lambda x: (_ds_sort(R.protocol_dataset(x[0])), R.is_subset(x[0]), R.text(x[0], "model"))):
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
        rows.append(Row("run", {"dataset": _column(spec, r)[2], "entry": entry_label(r, spec),
                                "hash": R.text(r, "protocol", "hash")[:12], "k": "" if k is None else str(k),
                                "runs": str(n), **_run_labels(spec, r)}, cells))
    notes = ["k: the k of each run's reported numbers (summary.k); no paper gives per-scale numbers"]
    if robust:
        notes.append("scale robustness at the reported k (summary.robustness): worst = lowest per-scale top-1; "
                     "drop = top-1 at scale 1.0 (else the largest scale) minus top-1 at the smallest scale; "
                     "AUC = area under top-1 vs log2(scale) divided by its span (mean top-1 over log-scale)")
    if any(n > 1 for _, n in runs):
        notes.append("* the latest of several runs of the same model / weights / protocol / dataset")
    _interval_notes(rows, notes)
    columns = [(f"s{s}", f"scale {s}") for s in ordered] + [("avg", "mean")]
    if robust:
        columns += [(name, header) for name, header in ROBUSTNESS_COLUMNS.items()]
    return Table(f"{task}_per_scale", "kNN top-1 (%) per scale (latest run of each model / weights / protocol / dataset)",
                 [("dataset", "dataset"), ("entry", "run"), ("hash", "protocol hash"), ("k", "k")],
                 columns, rows, notes)


#: The scale-robustness summaries of a multi-scale kNN record (``summary.robustness``) and their column headers.
ROBUSTNESS_COLUMNS = {"worst_scale_top1": "worst scale", "drop_to_smallest_scale": "drop to smallest",
                      "auc_log2_scale": "AUC log2 scale"}


def build_tables(records: list[dict[str, Any]], task: Optional[str] = None,
                 refs: Optional[list[dict[str, Any]]] = None) -> list[Table]:
    """The leaderboard tables for ``task`` (or every table of :func:`task_specs`)."""
    _check_task(task)
    refs = refs if refs is not None else load_references()
    out = []
    for name, spec in task_specs().items():
        if task not in (None, name):
            continue
        out.append(task_table(records, name, refs))
        if spec.per_scale and any(r.get("task") in spec.tasks for r in records):
            out.append(knn_scale_table(records, name))
    return out
