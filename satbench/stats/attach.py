"""The statistics options of the tasks and how a runner attaches its statistics to its record.

* Options (command line and Python API, all recorded): ``--resamples N`` (bootstrap resamples, default 10,000) for
  every task that keeps per-image predictions; ``--seeds S ...`` for the trained probes (the loop is
  :func:`satbench.eval.repeats.run_seeds`); ``--train-fraction F ...`` / ``--shots N ...`` / ``--draws D`` /
  ``--subset-seed S`` for kNN and cached-linear (subsets from :mod:`satbench.stats.fractions`).
* :func:`attach`: check that the per-image predictions reproduce the record's own numbers
  (:meth:`~satbench.stats.fields.StatisticsFields.check_against`), then set ``summary["ci"]`` (and
  ``summary["robustness"]``), ``metrics["statistics"]`` and the prediction sidecar the record writes first
  (:meth:`satbench.records.results.Record.attach_predictions`). A mismatch (a bug, never expected) keeps the record: it is
  written without intervals and sidecar, with ``metrics["statistics"]["error"]`` saying why, and a warning.
"""

from __future__ import annotations

import argparse
import logging
import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

from satbench.config.argtypes import fraction, nonnegative_int, positive_int
from satbench.errors import SatbenchError
from satbench.stats.budget import check_repeats, check_resamples, check_shots
from satbench.stats.bootstrap import DEFAULT_RESAMPLES, DEFAULT_SEED

log = logging.getLogger("satbench")

#: Task options (``RunOptions.extra`` / ``api.run(task_options=...)``) this module owns.
SUBSET_OPTIONS = ("train_fraction", "shots", "draws", "subset_seed")
OPTION_NAMES = ("resamples",) + SUBSET_OPTIONS + ("temperature_scaling",)


@dataclass(frozen=True)
class StatsOptions:
    """How the bootstrap intervals of a run are computed (recorded in ``metrics.statistics.bootstrap``)."""

    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED

    @classmethod
    def from_extra(cls, extra: Mapping[str, Any]) -> "StatsOptions":
        r = extra.get("resamples")
        return cls(resamples=DEFAULT_RESAMPLES if r is None else int(r))

    def kwargs(self) -> dict[str, int]:
        """Keyword arguments of the :mod:`satbench.stats.fields` helpers."""
        return {"resamples": self.resamples, "seed": self.seed}


# ---------------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------------
def add_statistics_arguments(g: argparse._ArgumentGroup) -> None:
    """``--resamples``: every task that keeps per-image predictions."""
    g.add_argument("--resamples", type=positive_int, default=None, metavar="N",
                   help=f"bootstrap resamples of the 95%% intervals (default {DEFAULT_RESAMPLES}; recorded)")


def add_calibration_arguments(g: argparse._ArgumentGroup, where: str) -> None:
    """``--temperature-scaling``: the probes whose logits can be scaled on a held-out part of train (``where``)."""
    g.add_argument("--temperature-scaling", action="store_true", default=None,
                   help=f"also report the calibration errors after temperature scaling, T fitted {where}; never on "
                        f"the val/test split (T and the scaled errors recorded)")


def add_seed_arguments(g: argparse._ArgumentGroup) -> None:
    """``--seeds``: the trained probes (one record per seed plus an aggregate record)."""
    g.add_argument("--seeds", type=nonnegative_int, nargs="+", default=None, metavar="S",
                   help="train once per seed (the model is loaded once; --seed still seeds random weights) and write "
                        "one record per seed plus an aggregate (mean, sample std, min/max, IQM from 4 seeds)")


def add_subset_arguments(g: argparse._ArgumentGroup) -> None:
    """``--train-fraction`` / ``--shots`` / ``--draws`` / ``--subset-seed``: kNN and cached-linear."""
    g.add_argument("--train-fraction", type=fraction, nargs="+", default=None, metavar="F",
                   help="evaluate on class-stratified, nested subsets of the train split, e.g. 0.01 0.1 (features "
                        "extracted once; one record per fraction and draw; recorded, never compared with a paper)")
    g.add_argument("--shots", type=positive_int, nargs="+", default=None, metavar="N",
                   help="N train images per class (nested: 1 shot inside 5 shots), like --train-fraction")
    g.add_argument("--draws", type=positive_int, default=None, metavar="D",
                   help="independent subset draws per fraction / shot count, averaged with their spread (default 1)")
    g.add_argument("--subset-seed", type=nonnegative_int, default=None, metavar="S",
                   help="seed of the subsets (default 0; the same for every model, so runs stay paired)")


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The statistics options present on ``args`` (``RunOptions.extra``)."""
    out = {}
    for name in OPTION_NAMES + ("seeds",):
        v = getattr(args, name, None)
        if v is not None:
            out[name] = v
    return out


# ---------------------------------------------------------------------------------------------------------------------
# Checks (Python API callers pass the same options without argparse)
# ---------------------------------------------------------------------------------------------------------------------
def _int_list(name: str, v: Any, lo: int) -> list[int]:
    items = list(v) if isinstance(v, (list, tuple)) else [v]
    if not items or any(isinstance(x, bool) or not isinstance(x, int) or x < lo for x in items):
        raise SatbenchError(f"{name} must be {'non-negative' if lo == 0 else 'positive'} integers, got {v!r}")
    if len(set(items)) != len(items):
        raise SatbenchError(f"{name} lists a value twice: {v!r}")
    return items


def check_options(task: Any, extra: dict[str, Any], seeds: Optional[Sequence[int]]) -> Optional[list[int]]:
    """Validate the statistics options for ``task`` (in place: normalised types); returns the seeds (or None).

    Refused, in one line and before any work: seeds for a task without a training seed, subsets for a task that does
    not take them, seeds together with subsets, and malformed values."""
    if "resamples" in extra and extra["resamples"] is not None:
        r = extra["resamples"]
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise SatbenchError(f"resamples must be a positive integer, got {r!r}")
        check_resamples(r)
    if extra.get("temperature_scaling") is not None:
        if not isinstance(extra["temperature_scaling"], bool):
            raise SatbenchError(f"temperature_scaling must be true or false, got {extra['temperature_scaling']!r}")
        if extra["temperature_scaling"] and not getattr(task, "supports_temperature_scaling", False):
            raise SatbenchError(f"--temperature-scaling applies to tasks cached-linear, linear and finetune (fitted on "
                                f"a held-out part of the train split), not {task.name}"
                                + (": kNN votes are not logits" if task.name == "knn" else ""))
    subset = {k: extra[k] for k in SUBSET_OPTIONS if extra.get(k) is not None}
    if subset:
        if not getattr(task, "supports_subsets", False):
            flags = ", ".join("--" + k.replace("_", "-") for k in subset)
            raise SatbenchError(f"{flags} appl{'y' if len(subset) > 1 else 'ies'} to tasks knn and cached-linear, "
                                f"not {task.name}")
        if extra.get("train_fraction") is None and extra.get("shots") is None:
            raise SatbenchError("--draws / --subset-seed need --train-fraction or --shots")
        if extra.get("train_fraction") is not None:
            fr = extra["train_fraction"]
            items = list(fr) if isinstance(fr, (list, tuple)) else [fr]
            if not items or any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x)
                                or not 0 < x <= 1 for x in items):
                raise SatbenchError(f"train fractions must be numbers in (0, 1], got {fr!r}")
            if len(set(map(float, items))) != len(items):
                raise SatbenchError(f"train fractions list a value twice: {fr!r}")
            extra["train_fraction"] = [float(x) for x in items]
        if extra.get("shots") is not None:
            extra["shots"] = _int_list("shots", extra["shots"], 1)
            check_shots(extra["shots"])
        if extra.get("draws") is not None:
            extra["draws"] = _int_list("draws", [extra["draws"]], 1)[0]
            check_repeats(extra["draws"], "--draws")
        if extra.get("subset_seed") is not None:
            extra["subset_seed"] = _int_list("subset_seed", [extra["subset_seed"]], 0)[0]
    if seeds is None:
        return None
    seeds = _int_list("seeds", seeds, 0)
    check_repeats(len(seeds), "--seeds")
    if not getattr(task, "supports_seeds", False):
        raise SatbenchError(f"--seeds applies to the trained probes (linear, cached-linear, finetune, segmentation); "
                            f"task {task.name} has no training seed")
    if subset:
        raise SatbenchError("--seeds and --train-fraction/--shots cannot be combined in one run (the subsets already "
                            "repeat with --draws); run them separately")
    if extra.get("evaluate"):
        raise SatbenchError("--seeds trains once per seed; --evaluate trains nothing")
    return seeds


def train_subsets(dataset: Any, extra: Mapping[str, Any]) -> list[Any]:
    """The subsets the options ask for (:func:`satbench.stats.fractions.subsets`), drawn from the train split's labels
    in split order; empty when none is asked for."""
    if extra.get("train_fraction") is None and extra.get("shots") is None:
        return []
    from satbench.stats.fractions import subsets

    labels = [int(s.label) for s in dataset.samples("train")]
    return subsets(labels, parent_sha256=dataset.split_sha256("train"), fractions=extra.get("train_fraction") or (),
                   shots=extra.get("shots") or (), seed=int(extra.get("subset_seed") or 0),
                   draws=int(extra.get("draws") or 1))


# ---------------------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------------------
def attach(record: Any, fields: Any, *, tol: float = 1e-9) -> bool:
    """Check ``fields`` against the record's summary, then add the intervals, ``metrics.statistics`` and the sidecar.

    Returns False (and records why in ``metrics.statistics.error``) when the predictions do not reproduce the record."""
    from satbench.errors import ResultsError

    try:
        fields.check_against(record["summary"], tol)
    except ResultsError as exc:
        msg = f"statistics left out: {exc}"
        log.warning("%s", msg)
        record.setdefault("metrics", {})["statistics"] = {"error": msg}
        return False
    fields.apply(record)
    record.attach_predictions(fields.arrays, fields.num_classes)
    return True


def ci_text(record: Mapping[str, Any], name: str, value: Any = None, digits: int = 2) -> str:
    """``93.10 [91.20, 95.00]`` from ``summary`` / ``summary.ci`` (``-`` without a value)."""
    from satbench.stats.formatting import value_ci

    summary = record.get("summary") or {}
    v = summary.get(name) if value is None else value
    ci = (summary.get("ci") or {}).get(name)
    return value_ci(v, ci if isinstance(ci, list) else None, digits)
