"""``satbench suite``: every classification task on every dataset present, one record each, then the leaderboard.

This module parses, prints the plan, one overall progress bar (stderr), the summary and the leaderboard;
:mod:`satbench.suite.run` plans and runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from satbench.config.argtypes import nonnegative_int
from satbench.cli.commands._common import add_device_args, add_model_args, model_build_options, option_flag

DESCRIPTION = (
    "Run every classification task of the leaderboard's tables (default: knn and cached-linear; linear and finetune "
    "train for hours and run only when named with --tasks) on every catalog dataset present under the data root (scene"
    " datasets; fMoW with --train-csv/--val-csv), one record each, through one model load and one feature cache, then "
    "print the leaderboard. --datasets also takes your own scene folders (a path, or a folder under --data-root that "
    "is not in the catalog), exactly as `satbench run --dataset DIR` does. A (task, dataset) whose comparable record "
    "is already in --results-dir (same task, model, weights, protocol hash after overrides, split hashes, "
    "normalisation, bf16, model options, seed) is skipped unless --force, so an interrupted suite resumes by running "
    "the same command again. A failing (task, dataset) does not stop the others: each failure is one 'satbench: "
    "error:' line, the others' records are kept, and the exit status is 1 (--fail-fast: stop at the first failure). "
    "Datasets that are not downloaded and weights that are not available are listed as missing with the command that "
    "fixes them; --dry-run only prints the plan.")


def register(sub: argparse._SubParsersAction) -> None:
    from satbench.leaderboard import FORMATS

    p = sub.add_parser("suite", help="every classification task on every dataset present, one record each, then "
                                     "the leaderboard (resumable; --dry-run lists the plan)",
                       description=DESCRIPTION)
    g = p.add_argument_group("model")
    add_model_args(g, default_model="satdino-vit_small-16")  # type: ignore[arg-type]
    g = p.add_argument_group("what to run")
    g.add_argument("--tasks", nargs="+", default=None, metavar="TASK",
                   help="tasks (default: knn cached-linear; also linear, finetune)")
    g.add_argument("--datasets", nargs="+", default=None, metavar="NAME|DIR",
                   help="catalog dataset names or your own scene folders (a path, or a folder under --data-root "
                        "that is not in the catalog; opened and recorded as `satbench run --dataset DIR` does) "
                        "(default: every scene dataset, and fMoW, except bundled subsets; name ucm-mini to run the "
                        "bundled UC Merced subset)")
    g.add_argument("--data-root", default=None, help="folder holding <name>/ datasets (default $SATBENCH_DATA)")
    g.add_argument("--train-csv", default=None, help="fMoW train CSV (`satbench data fmow-csv`)")
    g.add_argument("--val-csv", default=None, help="fMoW val CSV")
    g.add_argument("--protocol", dest="protocols", action="append", default=[], metavar="TASK=PROTOCOL",
                   help="a task's protocol (name in tasks/ or a YAML path), e.g. knn=scalemae-knn-v2; repeatable")
    g.add_argument("--set", dest="sets", action="append", default=[], metavar="TASK.KEY=VALUE",
                   help="override a protocol parameter of one task (YAML value; recorded), e.g. --set knn.scales=0.125 "
                        "--set knn.k=5 --set cached-linear.epochs=10; one value for a list parameter is a one-element "
                        "list; repeatable")
    g.add_argument("--force", action="store_true", help="run also the pairs that already have a comparable record")
    g.add_argument("--dry-run", action="store_true",
                   help="print the plan (run / skip (record PATH) / missing: WHY) and exit; nothing is loaded, "
                        "downloaded or written")
    g.add_argument("--fail-fast", action="store_true", help="stop at the first failing (task, dataset)")
    g = p.add_argument_group("running and output")
    add_device_args(g)  # type: ignore[arg-type]
    g.add_argument("--num-workers", type=nonnegative_int, default=None,
                   help="image-decoding worker processes (default: each task's)")
    g.add_argument("--results-dir", default=None, help="where records go (default $SATBENCH_RESULTS or ./results/runs)")
    g.add_argument("--format", choices=list(FORMATS), default="md", help="leaderboard format (default md)")
    g.add_argument("--no-leaderboard", action="store_true", help="do not print the leaderboard at the end")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_suite)


def config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`satbench.suite.plan.SuiteConfig` of parsed options."""
    from satbench.suite.plan import SuiteConfig, parse_protocols, parse_sets

    return SuiteConfig(model=args.model, weights=args.weights, seed=args.seed, tasks=args.tasks,
                       datasets=args.datasets, data_root=args.data_root, results_dir=args.results_dir,
                       protocols=parse_protocols(args.protocols), overrides=parse_sets(args.sets),
                       model_options=model_build_options(args), force=args.force, fail_fast=args.fail_fast,
                       device=args.device, bf16=args.bf16, batch_size=args.batch_size, num_workers=args.num_workers,
                       trust_checkpoint=args.trust_checkpoint, allow_unpinned=args.allow_unpinned,
                       train_csv=args.train_csv, val_csv=args.val_csv)


def plan_table(plan: Any) -> str:
    """The plan as a table: task, dataset, images, what happens."""
    from tabulate import tabulate

    rows = [[i.task, i.dataset, i.images or "-", i.describe()] for i in plan.items]
    w = plan.weights
    weights = w.identity.label() if w.identity else f"weights {w.spec or 'by name'}"
    head = f"suite plan: {plan.model}, {weights}; records in {plan.results_dir}; data root {plan.data_root or '(none)'}"
    counts = {s: len(plan.by_status(s)) for s in ("run", "skip", "missing")}
    tail = f"{counts['run']} to run, {counts['skip']} skipped, {counts['missing']} missing"
    return f"{head}\n{tabulate(rows, headers=['task', 'dataset', 'images', 'status'], disable_numparse=True)}\n{tail}"


def summary_table(result: Any) -> str:
    """What the suite did: one row per run, then totals with the forward passes saved."""
    from tabulate import tabulate

    from satbench.eval.task import get_task

    rows = []
    for r in result.results:
        if r.record is None:
            rows.append([r.item.task, r.item.dataset, "failed", f"{r.seconds:.1f}", "-", "-", r.error[:80]])
            continue
        h = get_task(r.record.task).headline
        value = r.record.summary.get(h.metric) if h is not None else None
        fw = r.forward
        rows.append([r.item.task, r.item.dataset,
                     f"{value:.2f}" if isinstance(value, (int, float)) else "-", f"{r.seconds:.1f}",
                     fw[0] if fw else "-", fw[1] if fw else "-", str(r.record.path or "")])
    plan = result.plan
    did, alone = result.forward_images, result.forward_images_independent
    lines = []
    if rows:
        lines.append(tabulate(rows, headers=["task", "dataset", "headline", "seconds", "forward imgs",
                                             "without cache", "record"], disable_numparse=True))
    saved = alone - did
    lines.append(f"suite: {len(result.done)} run, {len(plan.by_status('skip'))} skipped (comparable record), "
                 f"{len(plan.by_status('missing'))} missing, {len(result.failed)} failed in {result.seconds:.1f} s "
                 f"(model load {result.model_load_s:.1f} s)")
    lines.append(f"forward passes: {did} images; independent runs without a feature cache: {alone} "
                 f"(saved {saved}{f', {100.0 * saved / alone:.0f} %' if alone else ''})")
    return "\n".join(lines)


def _suite(args: argparse.Namespace) -> int:
    from satbench.api import check_model_options
    from satbench.suite.plan import RUN, make_plan
    from satbench.suite.run import run_suite, leaderboard_text

    config = config_from_args(args)
    check_model_options(args.model, config.model_options, option_flag)  # flag names in the message
    if args.dry_run:
        print(plan_table(make_plan(config)))
        return 0
    bar: Any = None
    done = [0]

    def on_event(name: str, item: Any, **info: Any) -> None:
        nonlocal bar
        if name == "plan":
            plan = info["plan"]
            print(plan_table(plan), flush=True)
            if not args.no_progress and plan.by_status(RUN):
                from tqdm.auto import tqdm

                bar = tqdm(total=len(plan.by_status(RUN)), desc="suite", unit="run", file=sys.stderr)
        elif name == "start" and bar is not None:
            bar.set_postfix_str(f"{item.task} on {item.dataset}")
        elif name in ("done", "failed"):
            done[0] += 1
            if bar is not None:
                bar.update(1)
            if name == "failed":
                msg = f"satbench: error: {item.task} on {item.dataset}: {info['error']}"
                (bar.write(msg, file=sys.stderr) if bar is not None else print(msg, file=sys.stderr))

    try:
        result = run_suite(config, on_event=on_event, option_label=option_flag)
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        print(f"satbench: interrupted after {done[0]} run(s); their records are kept: run the same command again to "
              f"resume", file=sys.stderr)
        return 130
    finally:
        if bar is not None:
            bar.close()
    plan = result.plan
    if not plan.by_status("run") and not plan.by_status("skip"):
        from satbench.suite.plan import SuiteError

        raise SuiteError("nothing to run: every (task, dataset) pair is missing (see the plan above)")
    print(summary_table(result))
    if not args.no_leaderboard:
        print()
        sys.stdout.write(leaderboard_text(config, args.format))
        sys.stdout.flush()
    return 1 if result.failed else 0
