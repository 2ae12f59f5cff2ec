"""Task ``cached-linear``: the fast linear protocol (``cached-linear-v1``): extract once through the feature cache, then
train a grid of linear heads in one pass (:mod:`satbench.eval.cached_linear`). Not the paper's protocol.

Its protocol files live with the linear ones (``tasks/linear/``, ``task: linear``, ``method: cached-heads``); its
records say task ``cached-linear`` and appear in the leaderboard's own cached-linear tables (one per dataset kind: scene
datasets, fMoW), never in the paper's linear-probe table.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from satbench.config.argtypes import positive_int
from satbench.eval.cached_linear_settings import CachedLinearSettings
from satbench.eval.corruption_eval import add_corruption_arguments
from satbench.eval.corruption_eval import run_options as corruption_run_options
from satbench.stats.attach import (add_calibration_arguments, add_seed_arguments, add_statistics_arguments,
                                   add_subset_arguments, ci_text)
from satbench.stats.attach import run_options as statistics_run_options
from satbench.eval.task import Headline, RunOptions, Task, register_task
from satbench.eval.task_linear import protocol_normalization


@register_task
class CachedLinearTask(Task):
    name = "cached-linear"
    help = "fast linear probe: cached features, a grid of heads trained in one pass (cached-linear-v1)"
    default_protocol = "cached-linear-v1"
    protocol_task = "linear"
    settings = CachedLinearSettings
    dataset_kinds = ("scene", "fmow")
    #: its own table (not the paper's protocol, so no paper rows): on scene datasets and, apart, on fMoW
    headline = Headline("top1", "top-1 (%)", table="cached-linear", title="Cached linear probe top-1 (%)")
    default_num_workers = 2
    uses_feature_cache = True
    distributed = True  # under torchrun: sharded extraction, rank 0 trains the heads and writes one record
    supports_seeds = True
    supports_subsets = True  # --train-fraction / --shots: one extraction, one record per subset and draw
    #: torchgeo: heads trained on train, selected (and T fitted) on val, reported on test
    split_families = ("satdino", "torchgeo")
    supports_temperature_scaling = True  # fitted on the protocol's hold-out of train
    supports_corruptions = True  # --corruptions: the refit head on the val split under each (type, severity)

    def accepts(self, protocol: Any) -> bool:
        return protocol.task == "linear" and protocol.params.get("method") == "cached-heads"

    def add_arguments(self, g: argparse._ArgumentGroup) -> None:
        g.add_argument("--epochs", type=positive_int, default=None, help="epochs of every head (protocol override)")
        g.add_argument("--train-csv", default=None, help="fMoW: the train CSV (with --dataset fmow)")
        g.add_argument("--val-csv", default=None, help="fMoW: the val CSV (with --dataset fmow)")
        add_seed_arguments(g)
        add_statistics_arguments(g)
        add_subset_arguments(g)
        add_calibration_arguments(g, "on the protocol's hold-out of the train split (holdout_fraction, seeded with "
                                     "--seed), with the selected grid head, which never saw it")
        add_corruption_arguments(g)

    def protocol_overrides(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"epochs": args.epochs} if args.epochs is not None else {}

    def run_options(self, args: argparse.Namespace) -> dict[str, Any]:
        return {**statistics_run_options(args), **corruption_run_options(args)}

    def run(self, model: Any, dataset: Any, protocol: Any, options: RunOptions) -> Any:
        from satbench.runtime.distributed import init_distributed, shutdown

        from satbench.eval.corruption_eval import check_options as corruption_plan

        plan = corruption_plan(self, options.extra)  # refused before any image is decoded
        settings = CachedLinearSettings.from_protocol(protocol)
        norm = protocol_normalization(settings.normalization, dataset)
        info = init_distributed(options.device)
        try:
            return self._run(model, dataset, protocol, options, norm, info, plan)
        finally:
            shutdown(info)

    def _run(self, model: Any, dataset: Any, protocol: Any, options: RunOptions, norm: Any, info: Any,
             plan: Any = None) -> Any:
        from satbench.models.features import FeatureExtractor
        from satbench.eval.cached_linear import run_cached_linear
        from satbench.stats.attach import train_subsets

        subsets = train_subsets(dataset, options.extra)  # drawn (and checked) before any image is decoded
        extractor = FeatureExtractor(model, normalization=norm, device=str(info.device), bf16=options.bf16)
        cache = options.feature_cache() if info.is_main else None
        t0 = time.perf_counter()
        from satbench.eval.knn_run import eval_split

        report = eval_split(dataset)  # val (SatDINO's splits) or test (a family with its own val split)
        selection = {} if report == "val" else {"selection_items": dataset.samples("val"),
                                                "selection_split_sha256": dataset.split_sha256("val")}
        res = run_cached_linear(extractor, dataset.samples("train"), dataset.samples(report), dataset.num_classes,
                                protocol, train_split_sha256=dataset.split_sha256("train"),
                                val_split_sha256=dataset.split_sha256(report), **selection,
                                cache=cache,
                                batch_size=options.batch_size, num_workers=options.num_workers, seed=options.seed,
                                progress=options.progress and info.is_main, dist=info, train_subsets=subsets,
                                allow_collapsed_features=options.allow_collapsed_features,
                                temperature_scaling=bool(options.extra.get("temperature_scaling")),
                                corruptions=plan)
        if res is None:
            return None
        if isinstance(res, list):
            records = [self._record(model, dataset, protocol, options, info, extractor, cache, r, t0) for r in res]
            for rec in records[1:]:  # one extraction for every subset: the first record carries it
                rec["extra"]["extract"]["shared_with_record"] = records[0]["id"]
            return records
        return self._record(model, dataset, protocol, options, info, extractor, cache, res, t0)

    def _record(self, model: Any, dataset: Any, protocol: Any, options: RunOptions, info: Any, extractor: Any,
                cache: Any, res: Any, t0: float) -> Any:
        from satbench.records.results import make_record
        from satbench.stats.fields import classification_fields
        from satbench.stats.attach import StatsOptions, attach

        metrics = {"top1": res.top1, "top5": res.top5, "val_loss": res.val_loss, "selected": res.selected,
                   "grid": res.grid, "holdout": res.holdout}
        timings = {"total_s": round(time.perf_counter() - t0, 3), **{f"{k}_s": v for k, v in res.seconds.items()}}
        extra = {"num_classes": dataset.num_classes, "seed": options.seed, "world_size": info.world_size,
                 "extract": res.extract, "cache": cache.describe()}
        ds = dataset.describe()
        from satbench.eval.knn_run import eval_split

        report = eval_split(dataset)
        if report != "val":  # records on SatDINO's splits stay as they were
            metrics[f"n_{report}"] = int(len(res.y_val))
            ds["split_use"] = {s: "fit" if s == "train" else "report" if s == report else "select"
                               for s in dataset.splits}
        if res.subset is not None:
            ds["train_subset"] = res.subset.as_record()
            metrics["n_train"] = int(len(res.subset.indices))
        record = make_record(task=self.name, model=model.card.name, weights=model.weights.as_dict(),
                             protocol=protocol.as_record(), dataset=ds, metrics=metrics,
                             summary=res.summary, extractor=extractor.describe(), timings=timings, extra=extra,
                             device=extractor.device)
        if res.features is not None:
            record["features"] = res.features
        c = dataset.num_classes
        scaled = (res.temperature_fit, res.conf_scaled) if res.temperature_fit is not None else None
        fields = classification_fields(res.y_val, res.pred, split_sha256=dataset.split_sha256(report), num_classes=c,
                                       top5_correct=res.top5_hit if c >= 5 else None, conf=res.conf,
                                       temperature=scaled, **StatsOptions.from_extra(options.extra).kwargs())
        attach(record, fields)
        if res.corrupted_pred is not None:
            from satbench.eval.corruption_eval import attach_corruptions

            attach_corruptions(record, res.corruption_plan, res.y_val, [res.pred],
                               {cond: [p] for cond, p in res.corrupted_pred.items()},
                               split_sha256=dataset.split_sha256(report), stats_opts=StatsOptions.from_extra(options.extra),
                               pred_keys=["top1"], extraction=res.corrupted_extraction,
                               metric="top1 of the refit head")
        return record

    def describe_result(self, record: Any) -> str:
        from tabulate import tabulate

        from satbench.eval.repeats import describe_aggregate, is_aggregate
        from satbench.eval.task_knn import subset_text
        from satbench.eval.task_linear import calibration_text, statistics_rows

        if is_aggregate(record):
            return describe_aggregate(record)
        m = record["metrics"]
        from satbench.records.splits import reported_split

        rep = reported_split(record)
        top5 = "-" if m["top5"] is None else f"{m['top5']:.2f}"
        ex = record["extra"]["extract"]
        rows = [["model", record["model"]], ["dataset", record["dataset"].get("name")],
                ["protocol", record["protocol"]["name"]],
                [f"top-1 ({rep}) [95% CI]", ci_text(record, "top1", m["top1"])], [f"top-5 ({rep})", top5],
                ["selected lr / wd", f"{m['selected']['lr']:g} / {m['selected']['weight_decay']:g}"],
                ["hold-out top-1" if rep == "val" else "selection (val) top-1", f"{m['selected']['holdout_top1']:.2f}"],
                ["features", "cached" if ex.get("cached_views") else
                 (f"shared with record {ex['shared_with_record']}" if "shared_with_record" in ex else "extracted")]]
        sub = record["dataset"].get("train_subset")
        if isinstance(sub, dict):
            rows.append(["train subset", subset_text(sub)])
        rows += statistics_rows(record)
        from satbench.eval.corruption_eval import describe_corruptions

        corr = describe_corruptions(record)
        return tabulate(rows, tablefmt="simple") + calibration_text(record) + (f"\n{corr}" if corr else "")
