"""``satbench suite``'s loop: :func:`run_suite` loads the model once, runs every ``run`` item of the plan
(:mod:`satbench.suite.plan`) through :func:`satbench.api.run` (one record each, written as soon as it is made) with one
shared feature cache, and returns what it did, including the forward passes it did and the ones independent runs
without a cache would have done. Nothing here prints: notes go to the ``satbench`` logger, progress to ``on_event``.
"""


from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from satbench.errors import SatbenchError

from satbench.suite.keys import WeightsId
from satbench.suite.plan import (
    READ_ONLY_TASKS, RUN, Plan, PlanItem, SuiteConfig, WeightsPlan, make_plan, read_records, select_tasks,
)

log = logging.getLogger("satbench")


def extraction_stats(rec: dict[str, Any]) -> Optional[dict[str, Any]]:
    """What a record's feature extraction did (``extra.extraction`` of kNN, ``extra.extract`` of cached-linear), or
    None for tasks that extract no cached features (linear, finetune train through the backbone every epoch)."""
    extra = rec.get("extra") if isinstance(rec.get("extra"), dict) else {}
    for name in ("extraction", "extract"):
        st = extra.get(name)
        if isinstance(st, dict) and isinstance(st.get("forward_images"), int):
            return st
    return None


def forward_counts(rec: dict[str, Any], n_images: int) -> Optional[tuple[int, int]]:
    """``(forward images the run did, forward images the same run does without a cache)`` or None when the record
    carries no extraction statistics. Without a cache a run computes each of its distinct views once per image
    (views shared within the run, e.g. EuroSAT's two 16-px kNN scales, are computed once either way)."""
    st = extraction_stats(rec)
    if st is None:
        return None
    views = set(st.get("cached_views") or []) | set(st.get("computed_views") or [])
    return int(st["forward_images"]), len(views) * n_images


@dataclass
class ItemResult:
    item: PlanItem
    record: Optional[dict[str, Any]] = None
    error: str = ""
    seconds: float = 0.0
    forward: Optional[tuple[int, int]] = None


@dataclass
class SuiteResult:
    """What :func:`run_suite` did."""

    plan: Plan
    results: list[ItemResult] = field(default_factory=list)
    seconds: float = 0.0
    model_load_s: float = 0.0

    @property
    def done(self) -> list[ItemResult]:
        return [r for r in self.results if r.record is not None]

    @property
    def failed(self) -> list[ItemResult]:
        return [r for r in self.results if r.error]

    @property
    def forward_images(self) -> int:
        """Forward images the suite's runs did."""
        return sum(r.forward[0] for r in self.results if r.forward is not None)

    @property
    def forward_images_independent(self) -> int:
        """Forward images the same runs do as independent runs without a feature cache."""
        return sum(r.forward[1] for r in self.results if r.forward is not None)


def _event(on_event: Optional[Callable[..., None]], name: str, item: Optional[PlanItem], **info: Any) -> None:
    if on_event is not None:
        on_event(name, item, **info)


def load_suite_model(config: SuiteConfig, option_label: Any = None) -> Any:
    """The suite's one model load (:func:`satbench.api.load`): a :class:`~satbench.models.weights.LoadedModel`."""
    from satbench.api import load

    return load(config.model, config.weights, seed=config.seed, trust_checkpoint=config.trust_checkpoint,
                kind="pretrain", options=config.model_options, allow_unpinned=config.allow_unpinned,
                option_label=option_label)


def run_suite(config: SuiteConfig, *, on_event: Optional[Callable[..., None]] = None, loaded: Any = None,
              option_label: Any = None) -> SuiteResult:
    """Plan, load the model once (only when something runs), and run every ``run`` item of the plan.

    ``on_event(name, item, **info)`` is called with ``"plan"`` (item None, ``plan=``) once, then ``"start"`` before
    each run and ``"done"`` (``record=``, ``seconds=``) or ``"failed"`` (``error=``) after it. A failing item is
    recorded in the result and the others still run (``config.fail_fast``: the first failure is raised).
    ``KeyboardInterrupt`` propagates; the records written so far stay, and calling again resumes. ``loaded``: an
    already loaded model.
    """
    from satbench import api
    from satbench.records.results import check_results_folder

    t0 = time.perf_counter()
    plan = make_plan(config)
    res = SuiteResult(plan)
    todo = plan.by_status(RUN)
    if todo:
        check_results_folder(plan.results_dir)  # before the model load: no run is ever lost at the end
        t1 = time.perf_counter()
        if loaded is None:
            loaded = load_suite_model(config, option_label)
        res.model_load_s = time.perf_counter() - t1
        identity = WeightsId.of(loaded.weights)
        if plan.weights.identity != identity:  # known only now (downloaded, hub): check the records again
            log.info("weights loaded: %s; checking the records again", identity.label())
            plan = make_plan(config, weights=WeightsPlan(config.weights, identity))
            res.plan = plan
            todo = plan.by_status(RUN)
    _event(on_event, "plan", None, plan=plan)
    for item in todo:
        _event(on_event, "start", item)
        t_item = time.perf_counter()
        model = loaded if item.task in READ_ONLY_TASKS else copy.deepcopy(loaded)
        kw: dict[str, Any] = dict(device=config.device, bf16=config.bf16, batch_size=config.batch_size,
                                  num_workers=config.num_workers, progress=False, seed=config.seed, use_cache=True,
                                  data_root=config.data_root)
        if item.kind == "fmow":
            kw.update(train_csv=config.train_csv, val_csv=config.val_csv)
        try:
            record = api.run(item.task, model=api.Model(model), dataset=item.source or item.dataset,
                             protocol=config.protocols.get(item.task), results_dir=plan.results_dir,
                             overrides=dict(config.overrides.get(item.task) or {}),
                             **{k: v for k, v in kw.items() if v is not None})
        except Exception as exc:  # noqa: BLE001 - one pair's failure never stops the others (KeyboardInterrupt does)
            if config.fail_fast:
                raise
            from satbench.errors import one_line
            from satbench.runtime.workers import worker_death

            exc = worker_death(exc) or exc  # a killed DataLoader worker is named, not an internal error

            msg = (one_line(exc) if isinstance(exc, SatbenchError)
                   else f"internal error: {type(exc).__name__}: {one_line(exc)}")
            log.debug("%s on %s failed", item.task, item.dataset, exc_info=True)
            r = ItemResult(item, error=msg, seconds=time.perf_counter() - t_item)
            res.results.append(r)
            _event(on_event, "failed", item, error=r.error)
            continue
        r = ItemResult(item, record=record, seconds=time.perf_counter() - t_item,
                       forward=forward_counts(record, item.images))
        res.results.append(r)
        _event(on_event, "done", item, record=record, seconds=r.seconds)
    res.seconds = time.perf_counter() - t0
    return res


def leaderboard_text(config: SuiteConfig, fmt: str = "md") -> str:
    """The leaderboard tables of the suite's tasks (kNN, linear, ...) from every record in its results folder (the
    suite's and the others), as ``satbench leaderboard --task T --format FMT`` prints them, in one document."""
    from satbench.leaderboard import build_tables, load_references, render_document, task_specs
    from satbench.records.results import default_results_dir

    folder = Path(config.results_dir) if config.results_dir else default_results_dir()
    records = read_records(folder)
    wanted = {t.headline.table for t in select_tasks(config.tasks)}
    refs = load_references()
    tables = [t for name in task_specs() if name in wanted for t in build_tables(records, name, refs)]
    extra = {"records": records, "subtitle": f"{len(records)} records"} if fmt == "html" else {}
    return render_document(tables, fmt, **extra)
