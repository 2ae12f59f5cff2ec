"""``satbench run --task knn``: SatDINO's multi-scale kNN on one dataset (or all six), one record per dataset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Optional

from ..errors import DataError, SatbenchError
from ._common import load_from_args, positive_float, positive_int
from ._tasks import TaskCLI, register_task

DEFAULT_PROTOCOL = "satdino-knn-v1"


def _add_once(group: argparse._ArgumentGroup, *flags: str, **kw: Any) -> None:
    """Add an option unless another task plug-in already added the same flag (they share the run parser)."""
    if any(f in group._option_string_actions for f in flags):  # noqa: SLF001 (argparse has no public query)
        return
    group.add_argument(*flags, **kw)


def add_arguments(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--scales", type=positive_float, nargs="+", default=None, metavar="S",
                   help="kNN: override the protocol's scales, e.g. --scales 1.0 0.5 (recorded)")
    g.add_argument("--k", type=positive_int, nargs="+", default=None, metavar="K",
                   help="kNN: override the protocol's k list (one search with max k; recorded)")
    g.add_argument("--knn-backend", choices=["auto", "faiss", "torch"], default="auto",
                   help="kNN neighbour search: faiss (CPU default) or exact torch matmul+topk (GPU default)")
    _add_once(g, "--no-cache", action="store_true", help="do not read or write the feature cache")
    _add_once(g, "--cache-dir", default=None,
              help="feature cache folder (default $SATBENCH_CACHE or $SATBENCH_HOME/cache/features)")
    _add_once(g, "--cache-identity", choices=["stat", "sha256"], default=None,
              help="how cache keys identify image files: stat (path, size, mtime, ctime, inode; default) or sha256 of "
                   "every image's bytes (exact, reads all images each run); default $SATBENCH_CACHE_IDENTITY or stat")
    _add_once(g, "--data-root", default=None, help="folder holding <name>/ datasets (default $SATBENCH_DATA)")
    _add_once(g, "--normalization", default=None,
              help="dataset normalisation: a preset, 'mean=a,b,c;std=d,e,f', or 'compute' (mean of per-image channel "
                   "means / stds over the train split); required for folders that are not a known dataset")
    _add_once(g, "--native-size", type=positive_int, default=None,
              help="native image size of a dataset folder that is not one of the six known datasets")
    _add_once(g, "--num-workers", type=int, default=1, help="image-decoding worker processes (default 1)")


def _datasets(args: argparse.Namespace) -> list[str]:
    from ..data.scene import DATASETS, default_data_root

    if args.dataset != "all":
        return [args.dataset]
    base = Path(args.data_root) if args.data_root else default_data_root()
    if base is None:
        raise DataError("--dataset all needs --data-root or $SATBENCH_DATA (the folder holding the prepared datasets)")
    found = [n for n in DATASETS if (base / n).is_dir()]
    if not found:
        raise DataError(f"--dataset all: none of {', '.join(DATASETS)} is under {base}")
    return found


def _normalization(args: argparse.Namespace):
    from ..normalization import parse_normalization

    spec = getattr(args, "normalization", None)
    if spec in (None, "compute"):
        return None
    return parse_normalization(spec)


def print_knn_table(record: dict[str, Any]) -> str:
    """A tabulate table of the per-scale accuracies of a kNN record."""
    from tabulate import tabulate

    m = record["metrics"]
    ks = m["k"]
    kr = m["k_report"]
    rows = []
    for e in m["per_scale"]:
        rows.append([e["scale"], e["key"], e["size"]] + [e["k"][str(k)]["top1"] for k in ks] + [e["k"][str(kr)]["top5"]])
    rows.append(["average", "", ""] + [m["average"][str(k)]["top1"] for k in ks] + [m["average"][str(kr)]["top5"]])
    headers = ["scale", "result key", "input px"] + [f"top-1 k={k}" for k in ks] + [f"top-5 k={kr}"]
    return tabulate(rows, headers=headers, floatfmt=".2f")


def run(args: argparse.Namespace) -> int:
    from ..cache import FeatureCache
    from ..data.scene import compute_normalization, open_scene_dataset
    from ..eval.knn import run_knn
    from ..protocols import load_protocol
    from ..results import write_record

    protocol = load_protocol(args.protocol or DEFAULT_PROTOCOL, task="knn")
    overrides: dict[str, Any] = {"scales": args.scales, "k": args.k}
    if args.k is not None and protocol.get("k_report") not in args.k:
        overrides["k_report"] = args.k[0]
    protocol = protocol.with_overrides(**overrides)
    norm = _normalization(args)
    compute = getattr(args, "normalization", None) == "compute"
    native = getattr(args, "native_size", None)
    # Open and validate every dataset before any work: a bad folder fails here, before a record exists.
    datasets = []
    for spec in _datasets(args):
        ds = open_scene_dataset(spec, data_root=args.data_root, normalization=norm,
                                native_size=native, split_source="auto") if not compute else None
        if compute:
            from ..normalization import get_normalization

            probe = open_scene_dataset(spec, data_root=args.data_root, normalization=get_normalization("imagenet"),
                                       native_size=native or 1)
            stats = compute_normalization(probe, "train", progress=not args.no_progress)
            ds = open_scene_dataset(spec, data_root=args.data_root, normalization=stats, native_size=native)
        ds.check()  # every split entry exists and names a class folder; no class folder is empty
        datasets.append(ds)
    loaded = load_from_args(args)
    cache = FeatureCache.checked(getattr(args, "cache_dir", None), enabled=not args.no_cache,
                                 identity=getattr(args, "cache_identity", None))
    explicit_norm: Optional[Any] = norm
    for ds in datasets:
        record = run_knn(loaded, ds, protocol, device=args.device, bf16=args.bf16, batch_size=args.batch_size,
                         cache=cache, progress=not args.no_progress, backend=args.knn_backend,
                         normalization=explicit_norm if explicit_norm is not None else (ds.normalization if compute else None),
                         num_workers=getattr(args, "num_workers", 1))
        if compute:
            record["extra"]["normalization_computed"] = {
                "method": "mean over train images of per-image channel means / population stds, [0,1], native size",
                **ds.normalization.as_dict()}
        path = write_record(record, args.results_dir)
        print(f"{ds.name}: {loaded.card.name} [{loaded.weights.tag or loaded.weights.source}] protocol "
              f"{protocol.name} ({protocol.hash[:12]}), {record['metrics']['n_train']} train / "
              f"{record['metrics']['n_val']} val, backend {record['extra']['backend']}")
        print(print_knn_table(record))
        t = record["timings"]
        print(f"extract {t['extract_s']:.1f} s, search {t['search_s']:.2f} s, cache hits {record['extra']['cache']['hits']}"
              f"; record: {path}\n")
    return 0


def _run(args: argparse.Namespace) -> int:
    if getattr(args, "num_workers", 1) < 0:
        raise SatbenchError(f"--num-workers must be >= 0, got {args.num_workers}")
    return run(args)


register_task(TaskCLI("knn", "multi-scale weighted kNN (SatDINO protocol)", add_arguments, _run))
