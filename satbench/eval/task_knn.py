"""Task ``knn``: SatDINO's multi-scale weighted kNN (``satdino-knn-v1``; Scale-MAE's ``scalemae-knn-v*``).

The engine lives in :mod:`satbench.eval.knn_run` (extraction, then :mod:`~satbench.eval.knn_search` and
:mod:`~satbench.eval.knn_vote` per view) and the per-scale views in :mod:`satbench.eval.knn_protocols`; this module
declares the task: its protocol settings (parsed once here and passed down), its options, the decisions a run makes
before any image is decoded (normalisation of a folder that is not in the catalog, a k list longer than the training
split), each recorded, and the one place a kNN result record is built (:func:`knn_record`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from typing import Any, Optional

import numpy as np

from satbench.config.argtypes import positive_float, positive_int
from satbench.eval.corruption_eval import add_corruption_arguments
from satbench.eval.corruption_eval import run_options as corruption_run_options
from satbench.eval.knn_settings import KnnSettings
from satbench.stats.attach import add_statistics_arguments, add_subset_arguments
from satbench.stats.attach import run_options as statistics_run_options
from satbench.eval.task import Headline, RunOptions, Task, register_task

log = logging.getLogger("satbench")


def clip_k(settings: KnnSettings, n_train: int) -> tuple[list[int], int] | None:
    """The protocol's k list clipped to the training-split size (None when nothing needs clipping)."""
    from satbench.eval.knn_run import clip_ks

    return clip_ks(settings.k, settings.k_report, n_train)


def knn_record(run: Any, loaded: Any, dataset: Any, stats_opts: Any = None) -> dict[str, Any]:
    """The result record of one :class:`~satbench.eval.knn_run.KnnRun`: per-scale and average top-1/top-5 of every k,
    the official results-JSON layout, the search and vote used, the extraction's account, and the per-image
    predictions of every (scale entry, k) with their bootstrap intervals (``stats_opts``: a
    :class:`satbench.stats.attach.StatsOptions`, default 10,000 resamples)."""
    from satbench.records.results import make_record
    from satbench.stats.attach import StatsOptions, attach
    from satbench.stats.fields import knn_fields

    stats_opts = stats_opts if stats_opts is not None else StatsOptions()
    ks, k_report, entries, by_view = list(run.settings.k), run.settings.k_report, run.entries, run.by_view
    num_classes = len(dataset.classes)
    per_scale = []
    for e in entries:
        r = by_view[e.view.key]
        per_scale.append({**e.as_dict(), "k": {str(k): {"top1": r.top1[k], "top5": r.top5[k]} for k in ks}})
    average = {str(k): {"top1": float(np.mean([by_view[e.view.key].top1[k] for e in entries])),
                        "top5": float(np.mean([by_view[e.view.key].top5[k] for e in entries]))} for k in ks}
    ds_key = dataset.info.name if dataset.info is not None else dataset.name
    official = {ds_key: {**{e.key: [by_view[e.view.key].top1[k] for k in ks] for e in entries},
                         "average": [average[str(k)]["top1"] for k in ks]}}
    from satbench.eval.knn_run import eval_split

    report = eval_split(dataset)
    metrics = {"k": ks, "k_report": k_report, "temperature": run.settings.temperature, "per_scale": per_scale,
               "average": average, "official_format": official, "n_train": run.n_train,
               f"n_{report}": len(run.val_labels), "num_classes": num_classes}
    summary = {"top1_avg": average[str(k_report)]["top1"], "top5_avg": average[str(k_report)]["top5"],
               "top1_per_scale": {str(e.scale): by_view[e.view.key].top1[k_report] for e in entries},
               "k": k_report}
    extra = {"backend": run.backend, "extraction": run.extraction["stats"], "cache": run.extraction["cache"],
             "batch_size": run.batch_size, "scale_entries": [e.as_dict() for e in entries], "world_size": run.world_size}
    forms = {e.key: {str(k): by_view[e.view.key].vote[k] for k in ks} for e in entries}
    used = sorted({f for per in forms.values() for f in per.values()})
    extra["vote"] = used[0] if len(used) == 1 else "mixed"  # "official" (DINO's exp(sim/T)) or "shifted"
    if len(used) > 1:
        extra["vote_forms"] = forms
    extra["search"] = next(iter(by_view.values())).search
    if run.backend == "faiss":
        import faiss

        extra["faiss_version"] = faiss.__version__
    ds = dataset.describe()
    ds["normalization_used"] = run.norm.as_dict()
    ds["split_use"] = split_use(dataset)
    t_extract = run.extraction["seconds"]
    record = make_record(task="knn", model=loaded.card.name, weights=loaded.weights.as_dict(),
                         protocol=run.protocol.as_record(), dataset=ds, metrics=metrics, summary=summary,
                         extractor=run.extractor.describe(),
                         timings={"extract_s": round(t_extract, 3), "search_s": round(run.search_s, 3),
                                  "total_s": round(t_extract + run.search_s, 3)},
                         extra=extra, device=run.extractor.device)
    # per-image predictions of every (scale entry, k) and their intervals, from the classification above
    t2 = time.perf_counter()
    scales = [float(e.scale) for e in entries]
    if len(set(scales)) == len(scales):
        preds = {(float(e.scale), k): by_view[e.view.key].pred[k] for e in entries for k in ks}
        hit5 = {(float(e.scale), k_report): by_view[e.view.key].top5_hit[k_report] for e in entries}
        conf = {(float(e.scale), k_report): by_view[e.view.key].conf[k_report] for e in entries}
        fields = knn_fields(run.val_labels, preds, k_report=k_report, split_sha256=dataset.splits[report].sha256,
                            num_classes=num_classes, top5_correct=hit5, conf=conf, **stats_opts.kwargs())
        attach(record, fields)
    else:  # two entries of one scale cannot be told apart in the sidecar (no shipped protocol does this)
        record["metrics"]["statistics"] = {"error": f"statistics left out: scale entries repeat a scale {scales}"}
    record["timings"]["statistics_s"] = round(time.perf_counter() - t2, 3)
    if run.corrupted_pred is not None:
        _attach_corruptions(record, run, entries, k_report, dataset, stats_opts)
    if run.train_subset is not None:
        record["dataset"]["train_subset"] = run.train_subset.as_record()
    if run.k_clipped is not None:
        record["metrics"]["k_clipped"] = run.k_clipped
    if run.features is not None:
        record["features"] = run.features
    return record


def _attach_corruptions(record: dict[str, Any], run: Any, entries: list[Any], k_report: int, dataset: Any,
                        stats_opts: Any) -> None:
    """``--corruptions``: the corruption block of a kNN record, at the reported k, one column per scale (its accuracy
    the mean over the scales, as ``top1_avg``)."""
    from satbench.eval.corruption_eval import attach_corruptions
    from satbench.eval.knn_run import eval_split
    from satbench.records.predictions import knn_key

    scales = [float(e.scale) for e in entries]
    if len(set(scales)) != len(scales):
        record["metrics"]["corruptions"] = {"error": f"corruption statistics left out: scale entries repeat a scale "
                                                     f"{scales}"}
        return
    attach_corruptions(record, run.corruption_plan, run.val_labels,
                       [run.by_view[e.view.key].pred[k_report] for e in entries],
                       {cond: [by_key[e.view.key] for e in entries] for cond, by_key in run.corrupted_pred.items()},
                       split_sha256=dataset.splits[eval_split(dataset)].sha256, stats_opts=stats_opts, scales=scales,
                       pred_keys=[knn_key(s, k_report) for s in scales], extraction=run.corrupted_extraction,
                       metric=f"top1_avg at k={k_report} (mean over scales {', '.join(f'{s:g}' for s in scales)})")
    record["timings"]["corruptions_search_s"] = round(run.corruption_search_s, 3)


def split_use(dataset: Any) -> dict[str, str]:
    """What a kNN run did with each split of its dataset: ``fit`` (the neighbours), ``report`` (the numbers), or
    ``held-out`` (not read: kept for what needs a validation split, e.g. a temperature or a probe's selection)."""
    from satbench.eval.knn_run import eval_split

    report = eval_split(dataset)
    return {s: "fit" if s == "train" else "report" if s == report else "held-out" for s in dataset.splits}


def knn_records(runs: list[Any], loaded: Any, dataset: Any, stats_opts: Any = None) -> list[dict[str, Any]]:
    """The records of the runs of one evaluation (the runs after the first say which record's extraction they used)."""
    records: list[dict[str, Any]] = []
    for run in runs:
        if records:
            run.extraction["stats"]["shared_with_record"] = records[0]["id"]
        records.append(knn_record(run, loaded, dataset, stats_opts))
    return records


def run_knn(loaded: Any, dataset: Any, protocol: Any, *, settings: Optional[KnnSettings] = None,
            statistics: Any = None, train_subsets: Any = (), **engine: Any) -> Any:
    """Evaluate and build the record(s): one record for the full train split, a list of them with ``train_subsets``,
    None on the ranks other than 0 under torchrun. ``engine``: :func:`satbench.eval.knn_run.evaluate_knn`'s options
    (device, bf16, batch_size, cache, progress, backend, normalization, num_workers, search_block_bytes, dist)."""
    from satbench.eval.knn_run import evaluate_knn

    runs = evaluate_knn(loaded, dataset, protocol, settings=settings, train_subsets=train_subsets, **engine)
    if runs is None:
        return None
    records = knn_records(runs, loaded, dataset, statistics)
    return records if train_subsets else records[0]


def subset_clip_notes(settings: KnnSettings, subsets: list[Any]) -> list[str]:
    """One note per train subset whose size clips the k list, computed on the subset (what its table shows)."""
    notes = []
    for sub in subsets or []:
        c = clip_k(settings, len(sub.indices))
        if c is not None:
            draw = f", draw {sub.draw}" if getattr(sub, "draw", 0) else ""
            notes.append(f"train subset {sub.kind} {sub.value}{draw} has {len(sub.indices)} images: k "
                         f"{list(settings.k)} clipped to {c[0]}, reported k {c[1]}")
    return notes


@register_task
class KnnTask(Task):
    name = "knn"
    help = "multi-scale weighted kNN (SatDINO's protocol; Scale-MAE's with --protocol scalemae-knn-v2)"
    default_protocol = "satdino-knn-v1"
    protocol_task = "knn"
    settings = KnnSettings
    dataset_kinds = ("scene",)
    headline = Headline("top1_avg", "mean top-1 over scales (%)", table="knn", title="kNN: mean top-1 (%) over scales",
                        reference_key="knn", reference_protocol="satdino-knn-v1", per_scale=True)
    default_num_workers = 1
    uses_feature_cache = True
    distributed = True  # under torchrun: sharded extraction, rank 0 searches and writes one record
    supports_subsets = True  # --train-fraction / --shots: one extraction, one record per subset
    supports_corruptions = True  # --corruptions: the val split also under each (type, severity), cached per view
    split_families = ("satdino", "torchgeo")  # torchgeo: neighbours from train, reported on test, val held out

    def add_arguments(self, g: argparse._ArgumentGroup) -> None:
        g.add_argument("--scales", type=positive_float, nargs="+", default=None, metavar="S",
                       help="override the protocol's scales, e.g. --scales 1.0 0.5 (recorded)")
        g.add_argument("--k", type=positive_int, nargs="+", default=None, metavar="K",
                       help="override the protocol's k list (one search with max k; recorded)")
        g.add_argument("--size-rule", choices=["floor", "crop", "strict"], default=None,
                       help="a protocol size that is not a whole number of the model's patches (patch 14 at 64 px): "
                            "floor = resize to the floor multiple of the patch (default), crop = centre-crop to it, "
                            "strict = refuse (recorded; satbench.eval.size_rules)")
        g.add_argument("--knn-backend", choices=["auto", "faiss", "torch"], default="auto",
                       help="neighbour search: faiss (CPU default) or exact torch matmul+topk (GPU default)")
        add_statistics_arguments(g)
        add_subset_arguments(g)
        add_corruption_arguments(g)

    def protocol_overrides(self, args: argparse.Namespace) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if args.scales is not None:
            out["scales"] = list(args.scales)
        if args.k is not None:
            out["k"] = list(args.k)
        if getattr(args, "size_rule", None) is not None:
            out["size_rule"] = args.size_rule
        return out

    def complete_overrides(self, protocol: Any, overrides: dict[str, Any]) -> dict[str, Any]:
        """A new k list without the protocol's reported k reports its first k (recorded as an override)."""
        ks = overrides.get("k")
        if ks is not None and "k_report" not in overrides and protocol.get("k_report") not in ks:
            return {**overrides, "k_report": list(ks)[0]}
        return overrides

    def effective_protocol(self, protocol: Any, dataset: Any) -> tuple[Any, dict[str, Any]]:
        """A k list longer than the train split is clipped to it (an override, so it changes the protocol hash)."""
        settings = protocol.settings(KnnSettings)
        n_train = len(dataset.samples("train"))
        clipped = clip_k(settings, n_train)
        if clipped is None:
            return protocol, {}
        ks, k_report = clipped
        return (protocol.with_overrides(k=ks, k_report=k_report),
                {"k_clipped": {"requested": list(settings.k), "used": ks, "n_train": n_train}})

    def run_options(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"backend": args.knn_backend, **statistics_run_options(args), **corruption_run_options(args)}

    def run(self, model: Any, dataset: Any, protocol: Any, options: RunOptions) -> Any:
        from satbench.data.scene import compute_normalization
        from satbench.stats.attach import StatsOptions, train_subsets

        from satbench.eval.corruption_eval import check_options as corruption_plan

        plan = corruption_plan(self, options.extra)  # refused before any image is decoded
        settings = protocol.settings(KnnSettings)
        if dataset.native_size is None:
            dataset.ensure_native_size()
            log.info("%s is not in the catalog: native size %d px read from its images (recorded)", dataset.name,
                     dataset.native_size)
        subsets = train_subsets(dataset, options.extra)  # drawn (and checked) before any image is decoded
        notes: dict[str, Any] = {}
        if not subsets:  # with subsets, each is clipped to its own size (the engine), never to the whole split
            protocol, notes = self.effective_protocol(protocol, dataset)
        for note in subset_clip_notes(settings, subsets):
            log.info("%s %s (recorded)", dataset.name, note)
        if "k_clipped" in notes:
            c = notes["k_clipped"]
            log.info("%s has %d training images: k %s clipped to %s (recorded)", dataset.name, c["n_train"],
                     c["requested"], c["used"])
            settings = dataclasses.replace(settings, k=tuple(c["used"]), k_report=min(settings.k_report, c["n_train"]))
        norm = options.extra.get("normalization")
        computed = bool(options.extra.get("normalization_computed"))
        if norm is None and settings.normalization == "dataset" and dataset.normalization is None:
            log.info("%s is not in the catalog: its normalisation is computed from its train split (recorded)",
                     dataset.name)
            norm = compute_normalization(dataset, "train", progress=options.progress)
            computed = True
        from satbench.runtime.distributed import init_distributed, shutdown

        info = init_distributed(options.device)
        try:
            cache = options.feature_cache() if info.is_main else None
            record = run_knn(model, dataset, protocol, settings=settings, device=str(info.device), bf16=options.bf16,
                             batch_size=options.batch_size, cache=cache, progress=options.progress and info.is_main,
                             backend=options.extra.get("backend", "auto"), normalization=norm,
                             num_workers=options.num_workers, dist=info,
                             allow_collapsed_features=options.allow_collapsed_features,
                             statistics=StatsOptions.from_extra(options.extra), train_subsets=subsets,
                             corruptions=plan)
        finally:
            shutdown(info)
        if record is None:
            return None
        for rec in record if isinstance(record, list) else [record]:
            if computed:
                rec["extra"]["normalization_computed"] = {
                    "method": "mean over train images of per-image channel means / population stds, [0,1], native size",
                    **norm.as_dict()}
            for key, value in notes.items():
                rec["metrics"].setdefault(key, value)  # a subset's own clipping wins
        return record

    def describe_result(self, record: Any) -> str:
        from tabulate import tabulate

        from satbench.records.predictions import knn_key
        from satbench.stats.formatting import value_ci
        from satbench.eval.repeats import describe_aggregate, is_aggregate

        if is_aggregate(record):
            return describe_aggregate(record)
        m = record["metrics"]
        ks = m["k"]
        kr = m["k_report"]
        ci_all = (m.get("statistics") or {}).get("ci") or {}
        rows = []
        for e in m["per_scale"]:
            ci = ci_all.get(knn_key(e["scale"], kr))
            rows.append([e["scale"], e["key"], e["size"]] + [e["k"][str(k)]["top1"] for k in ks]
                        + [e["k"][str(kr)]["top5"], value_ci(e["k"][str(kr)]["top1"], ci)])
        avg_ci = (record["summary"].get("ci") or {}).get("top1_avg")
        rows.append(["average", "", ""] + [m["average"][str(k)]["top1"] for k in ks] + [m["average"][str(kr)]["top5"]]
                    + [value_ci(m["average"][str(kr)]["top1"], avg_ci)])
        headers = (["scale", "result key", "input px"] + [f"top-1 k={k}" for k in ks] + [f"top-5 k={kr}"]
                   + [f"top-1 k={kr} [95% CI]"])
        p = record["protocol"]
        t = record["timings"]
        report, n_eval = reported_split(record)
        head = (f"{record['dataset']['name']}: {record['model']} protocol {p['name']} ({p['hash'][:12]}), "
                f"{m['n_train']} train / {n_eval} {report}, backend {record['extra']['backend']}")
        family = record["dataset"].get("split_family", "satdino")
        if family != "satdino":
            held = [s for s, u in (record["dataset"].get("split_use") or {}).items() if u == "held-out"]
            head += (f"\nsplit family {family}: neighbours from train, numbers on {report}"
                     + (f", {' / '.join(held)} held out (not read)" if held else ""))
        sub = record["dataset"].get("train_subset")
        if isinstance(sub, dict):
            head += f"\ntrain subset: {subset_text(sub)}"
        lines = [head, tabulate(rows, headers=headers, floatfmt=".2f")]
        rob = record["summary"].get("robustness")
        if isinstance(rob, dict):
            ci = record["summary"].get("ci") or {}
            lines.append(f"scale robustness (k={rob.get('k', kr)}): worst scale "
                         f"{value_ci(rob['worst_scale_top1'], ci.get('worst_scale_top1'))} (scale {rob['worst_scale']:g})"
                         f", drop {rob['reference_scale']:g} -> {rob['smallest_scale']:g} "
                         f"{value_ci(rob['drop_to_smallest_scale'], ci.get('drop_to_smallest_scale'))}, "
                         f"AUC over log2 scale {value_ci(rob['auc_log2_scale'], ci.get('auc_log2_scale'))}")
        from satbench.stats.formatting import calibration_line

        calib = calibration_line(record["summary"])
        if calib:
            lines.append(calib)
        boot = (m.get("statistics") or {}).get("bootstrap")
        if boot:
            lines.append(f"intervals: 95% percentile bootstrap over the {n_eval} {report} images, "
                         f"{boot['resamples']} resamples (seed {boot['seed']}); per-image predictions in "
                         f"{(record.get('predictions') or {}).get('file', 'the sidecar')}")
        elif (m.get("statistics") or {}).get("error"):
            lines.append(m["statistics"]["error"])
        lines.append(f"extract {t['extract_s']:.1f} s, search {t['search_s']:.2f} s, "
                     f"cache hits {record['extra']['cache']['hits']}")
        from satbench.eval.corruption_eval import describe_corruptions

        corr = describe_corruptions(record)
        if corr:
            lines.append(corr)
        return "\n".join(lines)


def reported_split(record: Any) -> tuple[str, Any]:
    """``(split, image count)`` a kNN record reports (``val`` and ``metrics.n_val`` for SatDINO's splits)."""
    use = record["dataset"].get("split_use") or {}
    report = next((s for s, u in use.items() if u == "report"), "val")
    return report, record["metrics"].get(f"n_{report}")


def subset_text(sub: dict[str, Any]) -> str:
    """``10% (168 of 1680 images, seed 0, draw 0, sha256 1a2b3c4d5e6f)`` / ``5 shots per class (...)``."""
    what = (f"{100 * float(sub['fraction']):g}%" if sub.get("kind") == "fraction"
            else f"{sub.get('shots')} shots per class")
    short = sub.get("short_classes") or {}
    extra = f", {len(short)} class(es) with fewer images" if short else ""
    return (f"{what} ({sub.get('n')} of {sub.get('n_parent')} images, seed {sub.get('seed')}, draw {sub.get('draw')}, "
            f"sha256 {str(sub.get('sha256'))[:12]}{extra})")
