"""Task ``knn``: SatDINO's multi-scale weighted kNN (``satdino-knn-v1``; Scale-MAE's ``scalemae-knn-v*``).

The algorithm lives in :mod:`satbench.eval.knn` (search, vote, one record per dataset) and the per-scale views in
:mod:`satbench.eval.knn_protocols`; this module declares the task: its protocol settings, its options, and the
decisions a run makes before any image is decoded (normalisation of a folder that is not in the catalog, a k list
longer than the training split), each recorded.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from satbench.config.argtypes import positive_float, positive_int
from satbench.eval.knn_settings import KnnSettings
from satbench.eval.statistics import add_statistics_arguments, add_subset_arguments
from satbench.eval.statistics import run_options as statistics_run_options
from satbench.eval.task import Headline, RunOptions, Task, register_task

log = logging.getLogger("satbench")


def clip_k(settings: KnnSettings, n_train: int) -> tuple[list[int], int] | None:
    """The protocol's k list clipped to the training-split size (None when nothing needs clipping)."""
    if max(settings.k) <= n_train:
        return None
    ks = sorted({min(k, n_train) for k in settings.k})
    return ks, min(settings.k_report, n_train)


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

    def add_arguments(self, g: argparse._ArgumentGroup) -> None:
        g.add_argument("--scales", type=positive_float, nargs="+", default=None, metavar="S",
                       help="override the protocol's scales, e.g. --scales 1.0 0.5 (recorded)")
        g.add_argument("--k", type=positive_int, nargs="+", default=None, metavar="K",
                       help="override the protocol's k list (one search with max k; recorded)")
        g.add_argument("--knn-backend", choices=["auto", "faiss", "torch"], default="auto",
                       help="neighbour search: faiss (CPU default) or exact torch matmul+topk (GPU default)")
        add_statistics_arguments(g)
        add_subset_arguments(g)

    def protocol_overrides(self, args: argparse.Namespace) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if args.scales is not None:
            out["scales"] = list(args.scales)
        if args.k is not None:
            out["k"] = list(args.k)
        return out

    def complete_overrides(self, protocol: Any, overrides: dict[str, Any]) -> dict[str, Any]:
        """A new k list without the protocol's reported k reports its first k (recorded as an override)."""
        ks = overrides.get("k")
        if ks is not None and "k_report" not in overrides and protocol.get("k_report") not in ks:
            return {**overrides, "k_report": list(ks)[0]}
        return overrides

    def run_options(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"backend": args.knn_backend, **statistics_run_options(args)}

    def run(self, model: Any, dataset: Any, protocol: Any, options: RunOptions) -> Any:
        from satbench.data.scene import compute_normalization
        from satbench.eval.knn import run_knn
        from satbench.eval.statistics import StatsOptions, train_subsets

        settings = protocol.settings(KnnSettings)
        if dataset.native_size is None:
            dataset.ensure_native_size()
            log.info("%s is not in the catalog: native size %d px read from its images (recorded)", dataset.name,
                     dataset.native_size)
        notes: dict[str, Any] = {}
        subsets = train_subsets(dataset, options.extra)  # drawn (and checked) before any image is decoded
        n_train = len(dataset.samples("train"))
        clipped = clip_k(settings, n_train) if not subsets else None  # subsets: each is clipped to its own size
        for note in subset_clip_notes(settings, subsets):
            log.info("%s %s (recorded)", dataset.name, note)
        if clipped is not None:
            ks, k_report = clipped
            log.info("%s has %d training images: k %s clipped to %s (recorded)", dataset.name, n_train,
                     list(settings.k), ks)
            notes["k_clipped"] = {"requested": list(settings.k), "used": ks, "n_train": n_train}
            protocol = protocol.with_overrides(k=ks, k_report=k_report)
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
            record = run_knn(model, dataset, protocol, device=str(info.device), bf16=options.bf16,
                             batch_size=options.batch_size, cache=cache, progress=options.progress and info.is_main,
                             backend=options.extra.get("backend", "auto"), normalization=norm,
                             num_workers=options.num_workers, dist=info,
                             statistics=StatsOptions.from_extra(options.extra), train_subsets=subsets)
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
        head = (f"{record['dataset']['name']}: {record['model']} protocol {p['name']} ({p['hash'][:12]}), "
                f"{m['n_train']} train / {m['n_val']} val, backend {record['extra']['backend']}")
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
        boot = (m.get("statistics") or {}).get("bootstrap")
        if boot:
            lines.append(f"intervals: 95% percentile bootstrap over the {m['n_val']} val images, "
                         f"{boot['resamples']} resamples (seed {boot['seed']}); per-image predictions in "
                         f"{(record.get('predictions') or {}).get('file', 'the sidecar')}")
        elif (m.get("statistics") or {}).get("error"):
            lines.append(m["statistics"]["error"])
        lines.append(f"extract {t['extract_s']:.1f} s, search {t['search_s']:.2f} s, "
                     f"cache hits {record['extra']['cache']['hits']}")
        return "\n".join(lines)


def subset_text(sub: dict[str, Any]) -> str:
    """``10% (168 of 1680 images, seed 0, draw 0, sha256 1a2b3c4d5e6f)`` / ``5 shots per class (...)``."""
    what = (f"{100 * float(sub['fraction']):g}%" if sub.get("kind") == "fraction"
            else f"{sub.get('shots')} shots per class")
    short = sub.get("short_classes") or {}
    extra = f", {len(short)} class(es) with fewer images" if short else ""
    return (f"{what} ({sub.get('n')} of {sub.get('n_parent')} images, seed {sub.get('seed')}, draw {sub.get('draw')}, "
            f"sha256 {str(sub.get('sha256'))[:12]}{extra})")
