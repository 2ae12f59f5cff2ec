"""``satbench run --model M --task T ...``: evaluate a model on a task and write a result record."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil

from ..errors import UnknownNameError, close_matches
from ._common import add_device_args, add_model_args
from ._tasks import TASKS


def _load_task_plugins() -> None:
    from .. import commands

    for info in pkgutil.iter_modules(commands.__path__):
        if info.name.startswith("task_"):
            importlib.import_module(f"{commands.__name__}.{info.name}")


def register(sub: argparse._SubParsersAction) -> None:
    _load_task_plugins()
    p = sub.add_parser("run", help="evaluate a model on a task (knn, linear, finetune, segmentation)",
                       description="Evaluate a model on a task; writes one JSON record per run and prints a table.")
    add_model_args(p, default_model="satdino-vit_small-16")
    p.add_argument("--task", required=True, help=f"one of: {', '.join(sorted(TASKS)) or '(none installed)'}")
    p.add_argument("--dataset", default=None, help="dataset name or folder (default: the bundled ucm-mini)")
    p.add_argument("--protocol", default=None, help="protocol name in tasks/ or a YAML path (default: the task's)")
    p.add_argument("--results-dir", default=None, help="where records go (default $SATBENCH_RESULTS or ./results/runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_device_args(p)
    for name in sorted(TASKS):
        TASKS[name].add_arguments(p.add_argument_group(f"{name} options"))
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    task = TASKS.get(args.task)
    if task is None:
        raise UnknownNameError(f"unknown task {args.task!r}{close_matches(args.task, sorted(TASKS))}; "
                               f"known: {', '.join(sorted(TASKS))}")
    if int(os.environ.get("RANK", "0")) == 0:  # only rank 0 writes records
        from ..results import check_results_folder

        check_results_folder(args.results_dir)
    return task.run(args)
