"""``satbench run --task linear``: SatDINO's linear probe (``satdino-linear-v1``) or the cached grid (``cached-linear-v1``).

Also holds the code shared with ``--task finetune`` (:mod:`satbench.commands.task_finetune`): the options (added once
for both tasks), the dataset resolution (scene datasets by name / folder, fMoW by CSVs) and the record.
Runs data-parallel under ``torchrun --nproc_per_node N -m satbench.cli run --task linear ...``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import DataError, SatbenchError
from ._common import load_from_args, positive_float, positive_int
from ._tasks import TaskCLI, register_task

DEFAULT_PROTOCOLS = {"linear": "satdino-linear-v1", "finetune": "satdino-finetune-v1"}


def _add_once(group: argparse._ArgumentGroup, flag: str, **kw: Any) -> None:
    """Add ``flag`` unless another task already added it (linear and finetune share these options)."""
    if flag not in group._option_string_actions:  # shared with the parser the group belongs to
        group.add_argument(flag, **kw)


def add_train_arguments(group: argparse._ArgumentGroup) -> None:
    """Options of ``--task linear`` and ``--task finetune``."""
    _add_once(group, "--epochs", type=positive_int, default=None, help="linear/finetune: epochs (protocol override)")
    _add_once(group, "--lr", type=positive_float, default=None,
              help="linear/finetune: base learning rate, scaled by batch x world / 256 (protocol override)")
    _add_once(group, "--train-batch-size", type=positive_int, default=None,
              help="linear/finetune: training batch per process (protocol override; --batch-size is the extraction "
                   "batch of cached-linear)")
    _add_once(group, "--output-dir", default=None,
              help="linear/finetune: folder for checkpoint.pth (every epoch) and checkpoint_best.pth")
    _add_once(group, "--resume", action="store_true",
              help="linear/finetune: continue the run whose checkpoint.pth is in --output-dir")
    _add_once(group, "--evaluate", action="store_true",
              help="linear/finetune: evaluate --weights with their linear_head on val (no training)")
    _add_once(group, "--train-csv", default=None, help="fMoW: the train CSV (with --dataset fmow)")
    _add_once(group, "--val-csv", default=None, help="fMoW: the val CSV (with --dataset fmow)")
    _add_once(group, "--data-root", default=None,
              help="root of the datasets (--dataset NAME) or, for fMoW, of the CSVs' image paths")
    _add_once(group, "--num-workers", type=int, default=2, help="data-loading worker processes (default 2)")


# ---------------------------------------------------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class _Item:
    path: Path
    label: int
    line: int


@dataclass
class ResolvedData:
    """Train / val items (``.path``, ``.label``), class count, the split hashes and the record's dataset entry."""

    train: list[Any]
    val: list[Any]
    num_classes: int
    train_sha256: str
    val_sha256: str
    describe: dict[str, Any]
    normalization: Any = None  # the dataset's own normalisation (scene datasets)


def resolve_data(args: argparse.Namespace, need_train: bool = True) -> ResolvedData:
    """``--dataset fmow`` with ``--train-csv/--val-csv/--data-root``, else a scene dataset (name or folder)."""
    if (args.dataset or "").lower() == "fmow":
        return _fmow_data(args, need_train)
    if args.train_csv or args.val_csv:
        raise SatbenchError("--train-csv/--val-csv go with --dataset fmow")
    from ..data.scene import open_scene_dataset

    from ..normalization import parse_normalization

    spec = getattr(args, "normalization", None)
    if spec == "compute":
        raise SatbenchError("--normalization compute applies to --task knn; for linear / fine-tuning give a preset "
                            "or mean=..;std=.. (e.g. from `satbench data check DIR --compute-stats`)")
    # Fixed 224-px crops: an unnamed folder needs no --native-size; --normalization only for protocols that use it
    ds = open_scene_dataset(args.dataset, data_root=getattr(args, "data_root", None),
                            normalization=parse_normalization(spec) if spec else None,
                            native_size=getattr(args, "native_size", None), require_stats=False)
    train = ds.samples("train") if need_train else []
    val = ds.samples("val")
    return ResolvedData(train, val, len(ds.classes), ds.splits["train"].sha256, ds.splits["val"].sha256,
                        ds.describe(), ds.normalization)


def _fmow_data(args: argparse.Namespace, need_train: bool) -> ResolvedData:
    from ..data.fmow import FMOW_CATEGORIES, read_fmow_csv
    from ..io import sha256_file

    if not args.data_root:
        raise DataError("--dataset fmow needs --data-root (the folder the CSVs' image_path entries are relative to)")
    if not args.val_csv or (need_train and not args.train_csv):
        raise DataError("--dataset fmow needs --val-csv" + (" and --train-csv" if need_train else ""))

    def items(csv: str) -> list[_Item]:
        return [_Item(r["path"], r["category_idx"], r["line"]) for r in read_fmow_csv(csv, args.data_root)]

    train = items(args.train_csv) if need_train else []
    val = items(args.val_csv)
    t_sha = sha256_file(args.train_csv) if need_train else ""
    v_sha = sha256_file(args.val_csv)
    desc = {"name": "fmow", "num_classes": len(FMOW_CATEGORIES), "data_root": str(args.data_root),
            "split_files": {"train": args.train_csv, "val": args.val_csv},
            "split_hashes": {"train": t_sha, "val": v_sha}, "n_train": len(train), "n_val": len(val)}
    return ResolvedData(train, val, len(FMOW_CATEGORIES), t_sha, v_sha, desc)


def _normalization(name: str, data: ResolvedData):
    from ..normalization import get_normalization

    if name == "model":
        return None
    if name == "dataset":
        if data.normalization is None:
            raise SatbenchError("protocol normalization 'dataset' needs a known scene dataset or --normalization "
                                "(fMoW and unnamed folders have no table entry)")
        return data.normalization
    return get_normalization(name)


# ---------------------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------------------
def run_task(args: argparse.Namespace, task: str) -> int:
    """Shared body of ``--task linear`` and ``--task finetune``."""
    from tabulate import tabulate

    from ..eval.distributed import broadcast_object, init_distributed, local_device, shutdown
    from ..features import FeatureExtractor, pick_device
    from ..protocols import load_protocol
    from ..results import make_record, write_record

    protocol = load_protocol(args.protocol or DEFAULT_PROTOCOLS[task], task=task)
    cached = protocol.params.get("method") == "cached-heads"
    overrides: dict[str, Any] = {"epochs": args.epochs, "lr": args.lr, "batch_size": args.train_batch_size}
    if cached:
        if args.lr is not None or args.train_batch_size is not None:
            raise SatbenchError(f"protocol {protocol.name} sweeps learning rates itself; --lr/--train-batch-size "
                                f"do not apply (edit a copy of the protocol YAML instead)")
        if args.evaluate or args.resume or args.output_dir:
            raise SatbenchError(f"protocol {protocol.name} trains no checkpoint; --evaluate/--resume/--output-dir "
                                f"apply to satdino-linear-v1 and satdino-finetune-v1")
        overrides = {"epochs": args.epochs}
    protocol = protocol.with_overrides(**overrides)

    device = pick_device(args.device)
    info = init_distributed(device)
    try:
        device = local_device(device, info)
        kind = "finetune" if (task == "finetune" and args.evaluate) else "pretrain"
        loaded = load_from_args(args, kind=kind)
        data = resolve_data(args, need_train=not args.evaluate)
        norm = _normalization(protocol.params.get("normalization", "model"), data)
        extractor = FeatureExtractor(loaded, normalization=norm, device=str(device), bf16=args.bf16)
        progress = not args.no_progress and info.is_main
        t0 = time.perf_counter()
        extra: dict[str, Any] = {"num_classes": data.num_classes, "seed": args.seed, "world_size": info.world_size}
        if cached:
            from ..cache import FeatureCache
            from ..eval.cached_linear import run_cached_linear

            cache = FeatureCache.checked(getattr(args, "cache_dir", None), enabled=not getattr(args, "no_cache", False),
                                         identity=getattr(args, "cache_identity", None))
            extra["cache"] = cache.describe()
            res = run_cached_linear(extractor, data.train, data.val, data.num_classes, protocol,
                                    train_split_sha256=data.train_sha256, val_split_sha256=data.val_sha256,
                                    cache=cache, batch_size=args.batch_size,
                                    num_workers=max(0, args.num_workers), seed=args.seed, progress=progress)
            summary = res.summary
            metrics = {"top1": res.top1, "top5": res.top5, "val_loss": res.val_loss, "selected": res.selected,
                       "grid": res.grid, "holdout": res.holdout}
            timings = {"total_s": round(time.perf_counter() - t0, 3), **{f"{k}_s": v for k, v in res.seconds.items()}}
            extra["extract"] = res.extract
            rows = [["top-1 (val)", f"{res.top1:.2f}"], ["top-5 (val)", _fmt(res.top5)],
                    ["selected lr / wd", f"{res.selected['lr']:g} / {res.selected['weight_decay']:g}"],
                    ["hold-out top-1", f"{res.selected['holdout_top1']:.2f}"],
                    ["features", "cached" if res.extract["cached_views"] else "extracted"]]
        elif args.evaluate:
            from ..eval.linear import evaluate_with_head

            m = evaluate_with_head(extractor, loaded.linear_head, data.val, data.num_classes, protocol,
                                   num_workers=max(0, args.num_workers), info=info, progress=progress,
                                   where=str(loaded.weights.path or "weights"))
            summary = {"top1": m.acc1, "top5": m.acc5}
            metrics = {"evaluate": True, **m.as_dict()}
            timings = {"total_s": round(time.perf_counter() - t0, 3)}
            rows = [["top-1 (val)", f"{m.acc1:.2f}"], ["top-5 (val)", _fmt(m.acc5)], ["val images", m.n]]
        else:
            from ..eval.linear import train_classifier

            out = args.output_dir
            if out is None:
                if args.resume:
                    raise SatbenchError("--resume needs --output-dir (the folder holding checkpoint.pth)")
                out = broadcast_object(str(default_output_dir(task, loaded.card.name, data.describe.get("name"),
                                                              protocol.name)), info)
            res = train_classifier(extractor, data.train, data.val, data.num_classes, protocol, output_dir=out,
                                   resume=args.resume, seed=args.seed, num_workers=max(0, args.num_workers),
                                   info=info, progress=progress)
            summary = {"top1": res.best["acc1"], "top5": res.best["acc5"]}
            metrics = {"best": res.best, "last": res.last, "per_epoch": res.history,
                       "effective_lr": res.effective_lr, "resumed_from_epoch": res.resumed_from_epoch}
            timings = {"total_s": round(res.seconds, 3), "seconds_per_epoch": res.seconds_per_epoch}
            extra.update(checkpoint=res.checkpoint, best_checkpoint=res.best_checkpoint)
            rows = [["best top-1 (val)", f"{res.best['acc1']:.2f} (epoch {res.best['epoch'] + 1})"],
                    ["best-epoch top-5", _fmt(res.best["acc5"])],
                    ["last top-1", _fmt(res.last["acc1"])],
                    ["epochs", f"{len(res.history)} (resumed at {res.resumed_from_epoch})" if res.resumed_from_epoch
                     else len(res.history)],
                    ["effective lr", f"{res.effective_lr:g}"], ["checkpoints", str(Path(out))]]
        if info.is_main:
            record = make_record(task=task, model=loaded.card.name, weights=loaded.weights.as_dict(),
                                 protocol=protocol.as_record(), dataset=data.describe, metrics=metrics,
                                 summary=summary, extractor=extractor.describe(), timings=timings, extra=extra,
                                 device=extractor.device)
            path = write_record(record, args.results_dir)
            print(tabulate([["model", loaded.card.name], ["weights", loaded.weights.tag or loaded.weights.source],
                            ["dataset", data.describe.get("name")], ["protocol", protocol.name]] + rows,
                           tablefmt="simple"))
            print(f"record: {path}")
        return 0
    finally:
        shutdown(info)


def default_output_dir(task: str, model: str, dataset: Any, protocol: str) -> Path:
    """``$SATBENCH_HOME/runs/<task>/<model>_<dataset>_<protocol>_<UTC time>_<random>``: checkpoints by default."""
    from ..resources import satbench_home

    import uuid

    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    return satbench_home() / "runs" / task / f"{model}_{dataset}_{protocol}_{stamp}_{uuid.uuid4().hex[:6]}"


def _fmt(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.2f}"


register_task(TaskCLI(
    "linear",
    "linear probe on the frozen backbone (satdino-linear-v1, or the fast cached-linear-v1)",
    add_train_arguments,
    lambda args: run_task(args, "linear"),
))
