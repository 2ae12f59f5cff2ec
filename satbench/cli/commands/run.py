"""``satbench run --task T ...``: evaluate a model on a task and write a result record.

Each task has its own parser: the common options (a shared parent) plus the task's own (``Task.add_arguments``), so
flags never collide and ``satbench run --task knn --help`` shows exactly what applies. This module only parses and
prints; :func:`satbench.api.run` does the work.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from satbench.config.argtypes import nonnegative_int, positive_int
from satbench.cli.commands._common import add_device_args, add_model_args, model_build_options, option_flag

DESCRIPTION = "Evaluate a model on a task; writes one JSON record per run and prints a table."


def register(sub: argparse._SubParsersAction) -> None:
    # Parsed by main() below with the task's own parser; this entry only lists `run` in `satbench --help`.
    sub.add_parser("run", help="evaluate a model on a task (knn, linear, cached-linear, finetune, segmentation)",
                   description=DESCRIPTION, add_help=False)


def common_parser() -> argparse.ArgumentParser:
    """The options every task shares (model, weights, dataset, protocol, device, results)."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("model")
    add_model_args(g, default_model="satdino-vit_small-16")  # type: ignore[arg-type]
    g = p.add_argument_group("data and protocol")
    g.add_argument("--dataset", default=None,
                   help="catalog name, folder, or (knn) 'all' for every catalog dataset under --data-root "
                        "(default: the bundled ucm-mini)")
    g.add_argument("--data-root", default=None, help="folder holding <name>/ datasets (default $SATBENCH_DATA)")
    g.add_argument("--protocol", default=None, help="protocol name in tasks/ or a YAML path (default: the task's)")
    g.add_argument("--split", choices=["satdino", "torchgeo"], default="satdino", dest="split_family",
                   help="split family: satdino = SatDINO's official train/val (the default; kNN reports val); "
                        "torchgeo = TorchGeo's published train/val/test of eurosat, uc_merced, resisc45, downloaded "
                        "and md5-checked on first use (knn: neighbours from train, numbers on test, val held out); "
                        "recorded")
    g.add_argument("--normalization", default=None,
                   help="dataset normalisation: a preset, a catalog dataset, 'mean=a,b,c;std=d,e,f', or 'compute' "
                        "(mean of per-image channel means / stds over the train split); recorded")
    g.add_argument("--native-size", type=positive_int, default=None,
                   help="native image size of a folder that is not in the catalog (default: read from the images)")
    g = p.add_argument_group("running")
    add_device_args(g)  # type: ignore[arg-type]
    g.add_argument("--num-workers", type=nonnegative_int, default=None,
                   help="image-decoding worker processes (default: the task's)")
    g.add_argument("--results-dir", default=None, help="where records go (default $SATBENCH_RESULTS or ./results/runs)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--allow-collapsed-features", action="store_true",
                   help="record a run whose val features have collapsed (most dimensions flat across images), marked "
                        "in the record and the leaderboard, instead of failing; NaN / inf features always fail")
    return p


def task_parser(task: Any) -> argparse.ArgumentParser:
    """``satbench run --task <task>``'s parser: the common options and the task's own."""
    p = argparse.ArgumentParser(prog="satbench run", parents=[common_parser()],
                                description=f"{DESCRIPTION} Task {task.name}: {task.help}.")
    p.add_argument("--task", required=True, choices=[task.name], help="the task")
    task.add_arguments(p.add_argument_group(f"{task.name} options"))
    if task.uses_feature_cache:
        g = p.add_argument_group("feature cache")
        g.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
        g.add_argument("--cache-dir", default=None,
                       help="feature cache folder (default $SATBENCH_CACHE or $SATBENCH_HOME/cache/features)")
        g.add_argument("--cache-identity", choices=["stat", "sha256"], default=None,
                       help="how cache keys identify image files: stat (path, size, mtime, ctime, inode; default) or "
                            "sha256 of every image's bytes (slower, exact); see README 'What the feature cache "
                            "guarantees'")
    return p


def _usage(tasks: list[Any]) -> str:
    """``satbench run --help`` without a task: the options every task shares, then the tasks."""
    lines = ["tasks (each adds its own options):"]
    lines += [f"  {t.name:<14} {t.help}" for t in tasks]
    lines += ["", "`satbench run --task TASK --help` lists a task's own options as well."]
    p = argparse.ArgumentParser(prog="satbench run", usage="satbench run --task TASK [options]",
                                parents=[common_parser()], description=DESCRIPTION, epilog="\n".join(lines),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", required=True, metavar="TASK", help="one of " + ", ".join(t.name for t in tasks))
    return p.format_help().rstrip()


def _find_task(argv: Sequence[str]) -> Optional[str]:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--task", default=None)
    ns, _ = pre.parse_known_args(list(argv))
    return ns.task


def main(argv: Sequence[str]) -> int:
    """Parse ``satbench run`` arguments with the task's parser and run it."""
    from satbench.errors import UnknownNameError, close_matches
    from satbench.eval.task import get_task, list_tasks

    name = _find_task(argv)
    if name is None:
        if any(a in ("-h", "--help") for a in argv):
            print(_usage(list_tasks()))
            return 0
        names = [t.name for t in list_tasks()]
        print(f"satbench run: error: --task is required (one of {', '.join(names)})", file=sys.stderr)
        return 2
    tasks = {t.name: t for t in list_tasks()}
    if name not in tasks:
        raise UnknownNameError(f"unknown task {name!r}{close_matches(name, sorted(tasks))}; "
                               f"known: {', '.join(sorted(tasks))}")
    task = get_task(name)
    args = task_parser(task).parse_args(list(argv))
    return run_from_args(task, args)


def _datasets(args: argparse.Namespace) -> list[Optional[str]]:
    """``--dataset all``: every scene dataset of the catalog present under the data root."""
    if args.dataset != "all":
        return [args.dataset]
    from satbench.data.catalog import list_datasets
    from satbench.data.scene import default_data_root
    from satbench.errors import DataError

    base = Path(args.data_root) if args.data_root else default_data_root()
    if base is None:
        raise DataError("--dataset all needs --data-root or $SATBENCH_DATA (the folder holding the prepared datasets)")
    family = getattr(args, "split_family", "satdino")
    names = [s.name for s in list_datasets("scene") if not s.bundled
             and (family == "satdino" or family in s.split_families)]
    found = [n for n in names if (base / n).is_dir()]
    if not found:
        raise DataError(f"--dataset all: none of {', '.join(names)} is under {base}")
    return found


def run_from_args(task: Any, args: argparse.Namespace) -> int:
    """Turn parsed options into :func:`satbench.api.run` calls (one per dataset) and print each record."""
    from satbench import api

    datasets = _datasets(args)
    if len(datasets) > 1 and task.name != "knn":
        from satbench.errors import SatbenchError

        raise SatbenchError("--dataset all applies to --task knn")
    overrides = task.protocol_overrides(args)
    model_options = model_build_options(args)
    extra = task.run_options(args)
    common = dict(device=args.device, bf16=args.bf16, batch_size=args.batch_size, num_workers=args.num_workers,
                  progress=not args.no_progress, seed=args.seed, trust_checkpoint=args.trust_checkpoint,
                  allow_unpinned=args.allow_unpinned, allow_collapsed_features=args.allow_collapsed_features,
                  data_root=args.data_root, normalization=args.normalization, native_size=args.native_size,
                  train_csv=getattr(args, "train_csv", None), val_csv=getattr(args, "val_csv", None),
                  seg_format=getattr(args, "seg_format", None), output_dir=getattr(args, "output_dir", None),
                  split_family=None if args.split_family == "satdino" else args.split_family,
                  resume=getattr(args, "resume", False))
    if task.uses_feature_cache:
        common.update(use_cache=not args.no_cache, cache_dir=args.cache_dir, cache_identity=args.cache_identity)
    model: Any = args.model
    api.check_model_options(args.model, model_options, option_flag)  # flag names in the message
    if task.needs_loaded_model and len(datasets) > 1:  # one load for every dataset
        from satbench.eval.task import RunOptions

        model = api.Model(api.load(args.model, args.weights, seed=args.seed, trust_checkpoint=args.trust_checkpoint,
                                   kind=task.weights_kind(RunOptions(extra=extra)), options=model_options,
                                   allow_unpinned=args.allow_unpinned, option_label=option_flag))
    for ds in datasets:
        record = api.run(task.name, model=model, dataset=ds, protocol=args.protocol, weights=args.weights,
                         results_dir=args.results_dir, model_options=model_options, task_options=dict(extra),
                         overrides=overrides, **{k: v for k, v in common.items() if v is not None})
        from satbench.eval.task import get_task

        # one record, or one per train subset (--train-fraction / --shots); None on the other torchrun ranks
        for rec in record if isinstance(record, list) else [record] if record is not None else []:
            text = get_task(rec.task).describe_result(rec)  # `--task linear` may hand over to cached-linear
            if text:
                print(text)
            from satbench.records.inputs import input_line

            print(input_line(rec))
            from satbench.eval.feature_guard import warning_line

            loud = warning_line(rec.get("features"))
            if loud:
                print(loud)  # under the table (the check's own warning went to stderr when it ran)
            print(f"record: {rec.path}\n")
    return 0
