"""Leaderboard: result records + the papers' reference numbers -> tables (md / csv / latex / html), one HTML page,
plots. Modules: :mod:`.tables` (the task table, the layout and the delta rule), :mod:`.runs` (what a record says
about itself), :mod:`.escape` (one escaping layer per format), :mod:`.render`, :mod:`.html`, :mod:`.plots`."""

from __future__ import annotations

import sys
import types
from typing import Any

from satbench.leaderboard import public
from satbench.leaderboard.render import FORMATS, INTERVALS, cell_text, render, render_csv, render_document
from satbench.leaderboard.runs import Exclusion, exclusions, is_subset, protocol_dataset, train_equals_val, weights_tag
from satbench.leaderboard.layout import (
    DELTA_RULE, Cell, Row, Table, TaskSpec, entry_label, latest_runs, per_scale_tasks, spec_for_record, task_specs
)
from satbench.leaderboard.tables import build_tables
from satbench.leaderboard.references import load_references, ref_key

__all__ = ["DELTA_RULE", "FORMATS", "INTERVALS", "task_specs", "spec_for_record", "per_scale_tasks", "Cell", "Exclusion", "Row", "Table", "TaskSpec",
           "build_tables", "cell_text", "entry_label", "exclusions", "is_subset", "knn_scales_figure", "knn_scales_png",
           "latest_runs",
           "load_references", "plot_knn_scales", "protocol_dataset", "ref_key", "render", "render_csv",
           "render_document", "train_equals_val", "weights_tag"]


def __getattr__(name: str) -> Any:  # the plots need numpy and matplotlib: imported on first use only
    if name in ("knn_scales_figure", "knn_scales_png", "plot_knn_scales"):
        from satbench.leaderboard import plots

        return getattr(plots, name)
    raise AttributeError(f"module 'satbench.leaderboard' has no attribute {name!r}")


class _LeaderboardModule(types.ModuleType):
    """``satbench.leaderboard`` is both this package and the public API's function: ``satbench.leaderboard(records)``
    renders the tables (:func:`satbench.api.leaderboard`). Importing a subpackage binds it over a function of the same
    name on its parent, so the package itself is made callable."""

    def __call__(self, records: Any = None, **kwargs: Any) -> str:
        return public.leaderboard(records, **kwargs)


sys.modules[__name__].__class__ = _LeaderboardModule
