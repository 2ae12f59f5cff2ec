"""What a leaderboard table is made of: one :class:`TaskSpec` per task headline (from the task registry), the
dataset facts (order and labels, from the catalog), the format-agnostic :class:`Table` / :class:`Row` / :class:`Cell`,
and how a record becomes a run entry (its key, label, column and settings).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from satbench.errors import ResultsError
from satbench.records.checks import date_key
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

    A spec is one protocol family (``linear``: the paper's probe; ``cached-linear``: the cached grid of heads); its runs
    are split by dataset kind (:func:`dataset_kind`) into one :class:`Table` each (:func:`table_key`).
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
    #: the dataset kinds the family's tasks take (``scene``, ``fmow``, ...), in task order; runs of each kind get a
    #: table of their own
    kinds: tuple[str, ...] = ()


def summary_of(key: str) -> Callable[[dict[str, Any]], Optional[float]]:
    return lambda rec: R.number(rec, "summary", key)


def task_specs() -> "OrderedDict[str, TaskSpec]":
    """The leaderboard's protocol families, in task-registry order (knn, finetune, linear, cached-linear,
    segmentation, then plug-ins), one per headline table; tasks naming the same headline table share it."""
    from satbench.eval.task import list_tasks

    order = {"knn": 0, "finetune": 1, "linear": 2, "cached-linear": 3, "segmentation": 4}
    groups: "OrderedDict[str, list[Any]]" = OrderedDict()
    for t in sorted((t for t in list_tasks() if t.headline is not None),
                    key=lambda t: (order.get(t.headline.table, 99), t.headline.table, t.name != t.headline.table)):
        groups.setdefault(t.headline.table, []).append(t)
    out: "OrderedDict[str, TaskSpec]" = OrderedDict()
    for table, tasks in groups.items():
        h = tasks[0].headline
        out[table] = TaskSpec(h.title, h.metric, summary_of(h.metric), h.reference_key or table,
                              h.paper_protocol or (re.escape(h.reference_protocol) if h.reference_protocol else r"$^"),
                              by_crop=h.by_crop, per_scale=h.per_scale, recipe_switches=tuple(h.recipe_switches),
                              full_iters=h.full_iters, tasks=tuple(t.name for t in tasks),
                              kinds=tuple(dict.fromkeys(k for t in tasks for k in t.dataset_kinds)))
    return out


def table_for_record(rec: dict[str, Any]) -> Optional[str]:
    """The protocol family (key of :func:`task_specs`) a record belongs to, or None: its task's
    :meth:`~satbench.eval.task.Task.leaderboard_table` (``linear`` records of the cached-heads method go with
    ``cached-linear``)."""
    from satbench.eval.task import list_tasks

    task = next((t for t in list_tasks() if t.name == rec.get("task")), None)
    family = task.leaderboard_table(rec) if task is not None else None
    return family if family in task_specs() else None


#: How a dataset kind reads in a table title.
KIND_TITLES = {"scene": "scene datasets", "fmow": "fMoW", "segmentation": "segmentation datasets"}


def dataset_kind(rec: dict[str, Any], spec: Optional[TaskSpec] = None) -> str:
    """The kind of the dataset a run used: ``dataset.kind`` when recorded, else the catalog's kind of its (protocol)
    dataset, else (a folder outside the catalog) the first kind of its family (``scene``). A recorded kind that no
    table knows is an error naming the file and key."""
    from satbench.data.catalog import find_dataset_spec

    spec = spec or spec_for_record(rec)
    family_kinds = spec.kinds if spec is not None else ()
    kind = R.text(rec, "dataset", "kind")
    if kind:
        known = set(KIND_TITLES) | {k for s in task_specs().values() for k in s.kinds}
        if kind not in known:
            raise ResultsError(f"{R.where(rec)}: dataset.kind is {kind!r}, expected one of {', '.join(sorted(known))}")
        return kind
    for name in (R.protocol_dataset(rec), R.text(rec, "dataset", "name")):
        cat = find_dataset_spec(name) if name else None
        if cat is not None:
            return cat.kind
    return family_kinds[0] if family_kinds else "scene"


def reference_kinds(spec: TaskSpec, refs: list[dict[str, Any]]) -> tuple[str, ...]:
    """The dataset kinds of the papers' numbers in ``spec``'s reference tables (by the catalog), in family order."""
    from satbench.data.catalog import find_dataset_spec

    found: list[str] = []
    for ref in refs:
        t = ref.get(spec.reference)
        values = t.get("values") if isinstance(t, dict) else None
        for ds in (values if isinstance(values, dict) else {}):
            cat = find_dataset_spec(str(ds))
            kind = cat.kind if cat is not None else (spec.kinds[0] if spec.kinds else "scene")
            if kind not in found:
                found.append(kind)
    order = {k: i for i, k in enumerate(spec.kinds)}
    return tuple(sorted(found, key=lambda k: order.get(k, len(order))))


def home_kind(spec: TaskSpec, refs: list[dict[str, Any]]) -> str:
    """The kind whose table carries the family's own key: the papers' kind, else the family's first kind."""
    paper = reference_kinds(spec, refs)
    return paper[0] if paper else (spec.kinds[0] if spec.kinds else "scene")


def table_key(family: str, kind: str, home: str) -> str:
    """``linear`` for the family's home kind, ``linear-scene`` for another."""
    return family if kind == home else f"{family}-{kind}"


def table_title(spec: TaskSpec, kind: str) -> str:
    """The family's title, with the dataset kind when the family takes more than one (``... on fMoW``)."""
    return spec.title if len(spec.kinds) <= 1 else f"{spec.title} on {KIND_TITLES.get(kind, kind)}"


def spec_for_record(rec: dict[str, Any]) -> Optional[TaskSpec]:
    """The table a record belongs to (by its task)."""
    key = table_for_record(rec)
    return task_specs()[key] if key is not None else None


def per_scale_tasks() -> list[str]:
    """Tables with a per-scale table and plot."""
    return [name for name, spec in task_specs().items() if spec.per_scale]


def dataset_facts() -> tuple[dict[str, int], dict[str, str]]:
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
# Runs
# ----------------------------------------------------------------------------------------------------------------------
def run_key(rec: dict[str, Any]) -> tuple:
    """What makes two runs "the same run": model, weights (:func:`runs.weights_identity`: the tensors, whatever file
    format held them), protocol (name and hash), dataset, split family, crop, the train subset
    (fraction / shots) and whether it is a seeds / draws aggregate of how many runs."""
    agg = R.spread(rec)
    return (R.text(rec, "model"), R.weights_tag(rec), R.text(rec, "protocol", "name"), R.text(rec, "protocol", "hash"),
            R.text(rec, "dataset", "name"), R.family(rec), str(R.section(rec, "summary").get("crop", "")),
            R.subset_label(rec) or "", "" if agg is None else f"{agg[1]} {agg[2]}")


def latest_runs(records: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """``(latest record, number of runs)`` per (model, weights, protocol hash, dataset, train subset, aggregate),
    oldest group first. The member runs of a seeds / draws aggregate are left out when the aggregate is there
    (:func:`runs.without_aggregated_members`): the aggregate stands for them."""
    groups: "OrderedDict[tuple, list[dict[str, Any]]]" = OrderedDict()
    for r in sorted(R.with_tensor_identities(R.without_aggregated_members(records)), key=date_key):
        groups.setdefault(run_key(r), []).append(r)
    return [(g[-1], len(g)) for g in groups.values()]


def ds_sort_key(name: str) -> tuple:
    name, _, family = name.partition("#")
    ds, _, crop = name.partition("@")
    order = dataset_facts()[0]
    return (order.get(ds, 10_000), ds, family, int(crop) if crop.isdigit() else 0, crop)


def ds_label(name: str) -> str:
    """The catalog's label of a dataset (the name itself for datasets outside the catalog)."""
    return dataset_facts()[1].get(name, name)


def column_of(spec: TaskSpec, rec: dict[str, Any]) -> tuple[str, str, str]:
    """(column key, the paper column it compares with, header) of a run. A split family other than SatDINO's gets
    a column of its own (``eurosat#torchgeo``, "EuroSAT, torchgeo split"): families never share a column."""
    name, pd = R.text(rec, "dataset", "name"), R.protocol_dataset(rec)
    subset = R.is_subset(rec)
    key = name if not subset else f"{name}~{pd}"
    header = ds_label(name) if not subset else f"{name} (subset of {ds_label(pd)})"
    ref_col = pd
    if spec.by_crop:
        crop = R.text(rec, "summary", "crop")
        key, ref_col, header = f"{key}@{crop}", f"{pd}@{crop}", f"{header} {crop}"
    family = R.family(rec)
    if family != R.DEFAULT_FAMILY:
        key, header = f"{key}#{family}", f"{header}, {family} split"
    return key, ref_col, header


def entry_label(rec: dict[str, Any], spec: Optional[TaskSpec] = None) -> str:
    """Model + weights + protocol + settings, e.g.
    ``satdino-vit_small-16 · random weights (seed 0) · satdino-knn-v1 · k=5``."""
    extra = R.settings(rec, spec.recipe_switches, spec.full_iters) if spec else R.settings(rec)
    return " · ".join([R.text(rec, "model"), R.weights_label(rec), R.protocol_name(rec) or "?"] + extra)


def run_labels(spec: TaskSpec, rec: dict[str, Any]) -> dict[str, str]:
    k = R.reported_k(rec)
    return {"model": R.text(rec, "model"), "source": f"satbench, {R.weights_label(rec)}",
            "protocol": R.protocol_name(rec), "settings": "; ".join(R.settings(rec, spec.recipe_switches, spec.full_iters)),
            "vs": "", "k": "" if k is None else str(k)}


def record_settings(rec: dict[str, Any]) -> list[str]:
    """:func:`runs.settings` with the record's task's recipe rules (segmentation: iterations, switches)."""
    spec = spec_for_record(rec)
    return R.settings(rec, spec.recipe_switches, spec.full_iters) if spec else R.settings(rec)


def check_task(task: Optional[str]) -> None:
    specs = task_specs()
    if task is not None and task not in specs:
        raise ResultsError(f"unknown leaderboard task {task!r}; expected one of {', '.join(specs)}")
