"""Leaderboard tables: result records + the papers' reference numbers -> format-agnostic :class:`Table` objects.

One table per protocol family (``linear``: the paper's probe; ``cached-linear``: the cached grid of heads; ``knn``,
...) and dataset kind (scene datasets, fMoW, segmentation): a run sits only in the table of its family and kind, with
the papers' numbers of that family on datasets of that kind (``linear`` on fMoW; ``linear-scene`` has no paper rows).

Layout: one row per *entry*, one column per dataset (segmentation: per dataset and crop). An entry is either a paper
result (labelled model + "paper" + source) or a satbench run (model + weights + protocol + settings); the two never
share a row, so a paper number can never be read as a run's. A run shows ``value (delta)`` only when it is like for like
with the paper row of the same model (see :data:`DELTA_RULE` and :func:`satbench.leaderboard.runs.exclusions`); a run
that is not gets its reasons in the "vs paper" column. Of several runs of the same (model, weights, protocol hash,
dataset) the latest is shown, marked ``*``.
"""

from __future__ import annotations

from typing import Any, Optional

from satbench.leaderboard.layout import DELTA_RULE, Cell, Row, Table, TaskSpec, check_task, task_specs  # noqa: F401
from satbench.leaderboard.layout import dataset_kind, home_kind, reference_kinds
from satbench.leaderboard.references import load_references
from satbench.leaderboard.robustness import robustness_tables
from satbench.leaderboard.table import family_records, knn_scale_table, task_table




def build_tables(records: list[dict[str, Any]], task: Optional[str] = None,
                 refs: Optional[list[dict[str, Any]]] = None) -> list[Table]:
    """The leaderboard tables for ``task`` (or every table of :func:`task_specs`), then the corruption-robustness
    tables of its records that carry ``summary.corruptions`` (:mod:`satbench.leaderboard.robustness`)."""
    check_task(task)
    refs = refs if refs is not None else load_references()
    out = []
    for name, spec in task_specs().items():
        if task not in (None, name):
            continue
        recs = family_records(records, name)
        home = home_kind(spec, refs)
        kinds = list(reference_kinds(spec, refs))
        kinds += [k for k in dict.fromkeys(dataset_kind(r, spec) for r in recs) if k not in kinds]
        if not kinds and task == name:
            kinds = [home]  # a family named explicitly shows its (empty) table
        order = {k: i for i, k in enumerate(dict.fromkeys([home, *spec.kinds]))}
        for kind in sorted(kinds, key=lambda k: order.get(k, len(order))):
            out.append(task_table(recs, name, refs, kind))
        if spec.per_scale and recs:
            out.append(knn_scale_table(recs, name))
    return out + robustness_tables(records, task)
