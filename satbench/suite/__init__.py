"""``satbench suite``: plan the runs a model is missing (:mod:`~satbench.suite.plan`, with what makes two runs the
same in :mod:`~satbench.suite.keys`), then run them (:mod:`~satbench.suite.run`).

``from satbench.suite import make_plan`` (the module ``satbench/suite.py`` of satbench 0.2.0) still works: the names
resolve, on first use, in the module that holds them now.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_TASKS", "FolderSpec", "Plan", "PlanItem", "RunKey", "SuiteConfig", "SuiteError", "SuiteResult",
           "WeightsId", "WeightsPlan", "comparable", "forward_counts", "leaderboard_text", "make_plan", "record_mismatch",
           "run_suite", "select_datasets", "select_tasks", "weights_plan"]

_PARTS = ("satbench.suite.keys", "satbench.suite.plan", "satbench.suite.run")


def __getattr__(name: str) -> Any:
    import importlib

    if not name.startswith("__"):
        for mod in _PARTS:
            module = importlib.import_module(mod)
            if name in vars(module):
                return vars(module)[name]
    raise AttributeError(f"module 'satbench.suite' has no attribute {name!r}")
