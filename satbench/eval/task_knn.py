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

from ..argtypes import positive_float, positive_int
from .knn_settings import KnnSettings
from .task import Headline, RunOptions, Task, register_task

log = logging.getLogger("satbench")


def clip_k(settings: KnnSettings, n_train: int) -> tuple[list[int], int] | None:
    """The protocol's k list clipped to the training-split size (None when nothing needs clipping)."""
    if max(settings.k) <= n_train:
        return None
    ks = sorted({min(k, n_train) for k in settings.k})
    return ks, min(settings.k_report, n_train)


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

    def add_arguments(self, g: argparse._ArgumentGroup) -> None:
        g.add_argument("--scales", type=positive_float, nargs="+", default=None, metavar="S",
                       help="override the protocol's scales, e.g. --scales 1.0 0.5 (recorded)")
        g.add_argument("--k", type=positive_int, nargs="+", default=None, metavar="K",
                       help="override the protocol's k list (one search with max k; recorded)")
        g.add_argument("--knn-backend", choices=["auto", "faiss", "torch"], default="auto",
                       help="neighbour search: faiss (CPU default) or exact torch matmul+topk (GPU default)")

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
        return {"backend": args.knn_backend}

    def run(self, model: Any, dataset: Any, protocol: Any, options: RunOptions) -> Any:
        from ..data.scene import compute_normalization
        from .knn import run_knn

        settings = protocol.settings(KnnSettings)
        if dataset.native_size is None:
            dataset.ensure_native_size()
            log.info("%s is not in the catalog: native size %d px read from its images (recorded)", dataset.name,
                     dataset.native_size)
        notes: dict[str, Any] = {}
        n_train = len(dataset.samples("train"))
        clipped = clip_k(settings, n_train)
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
        from ..distributed import init_distributed, shutdown

        info = init_distributed(options.device)
        try:
            cache = options.feature_cache() if info.is_main else None
            record = run_knn(model, dataset, protocol, device=str(info.device), bf16=options.bf16,
                             batch_size=options.batch_size, cache=cache, progress=options.progress and info.is_main,
                             backend=options.extra.get("backend", "auto"), normalization=norm,
                             num_workers=options.num_workers, dist=info)
        finally:
            shutdown(info)
        if record is None:
            return None
        if computed:
            record["extra"]["normalization_computed"] = {
                "method": "mean over train images of per-image channel means / population stds, [0,1], native size",
                **norm.as_dict()}
        if notes:
            record["metrics"].update(notes)
        return record

    def describe_result(self, record: Any) -> str:
        from tabulate import tabulate

        m = record["metrics"]
        ks = m["k"]
        kr = m["k_report"]
        rows = []
        for e in m["per_scale"]:
            rows.append([e["scale"], e["key"], e["size"]] + [e["k"][str(k)]["top1"] for k in ks]
                        + [e["k"][str(kr)]["top5"]])
        rows.append(["average", "", ""] + [m["average"][str(k)]["top1"] for k in ks] + [m["average"][str(kr)]["top5"]])
        headers = ["scale", "result key", "input px"] + [f"top-1 k={k}" for k in ks] + [f"top-5 k={kr}"]
        p = record["protocol"]
        t = record["timings"]
        head = (f"{record['dataset']['name']}: {record['model']} protocol {p['name']} ({p['hash'][:12]}), "
                f"{m['n_train']} train / {m['n_val']} val, backend {record['extra']['backend']}")
        tail = (f"extract {t['extract_s']:.1f} s, search {t['search_s']:.2f} s, "
                f"cache hits {record['extra']['cache']['hits']}")
        return f"{head}\n{tabulate(rows, headers=headers, floatfmt='.2f')}\n{tail}"
