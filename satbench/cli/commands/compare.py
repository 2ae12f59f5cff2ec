"""``satbench compare A B``: paired difference, bootstrap interval and exact McNemar test of two runs on the same split.

A and B are record files (``results/runs/*.json``) or model names, resolved in ``--results-dir`` to their latest runs
with per-image predictions that are comparable (same task, dataset, protocol hash and split hashes). See
:mod:`satbench.stats.compare` for what is computed.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from satbench.config.argtypes import level, nonnegative_int, positive_int

FORMATS = ("table", "csv", "json")
CSV_FIELDS = ["dataset", "train_subset", "task", "protocol", "eval", "scale", "k", "metric", "n", "a", "b", "diff", "ci_lo", "ci_hi",
              "a_only", "b_only", "p_mcnemar", "p_holm"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="paired comparison of two runs on the same images (bootstrap CI, McNemar)",
                       description="Compare two runs on the same split from their per-image predictions: difference "
                                   "A - B with a paired-bootstrap interval, exact McNemar p-value, Holm correction.")
    p.add_argument("a", metavar="A", help="a record file, or a model name (its latest comparable runs)")
    p.add_argument("b", metavar="B", help="a record file, or a model name")
    p.add_argument("--results-dir", default=None,
                   help="where model names are looked up (default $SATBENCH_RESULTS or ./results/runs)")
    p.add_argument("--task", default=None, help="with model names: only this task")
    p.add_argument("--dataset", default=None, help="with model names: only this dataset")
    p.add_argument("--k", type=positive_int, default=None, help="kNN: the k to compare (default: the protocol's k_report)")
    p.add_argument("--format", choices=FORMATS, default="table", help="table (default), csv or json")
    p.add_argument("--resamples", type=positive_int, default=10_000, help="bootstrap resamples (default 10000)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--level", type=level, default=0.95, help="interval level (default 0.95)")
    p.set_defaults(func=run)


def _num(v: Any, digits: int = 2) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def render_table(cmp: Any) -> str:
    """The comparison as text: who is A and B, the resampling, then one row per dataset x evaluation."""
    from tabulate import tabulate

    from satbench.stats import formatting as fmt

    lines = []
    for i, (a, b) in enumerate(cmp.pairs):
        lines.append(f"A: {a.label}  {a.path}")
        lines.append(f"B: {b.label}  {b.path}")
    spec = cmp.spec
    lines.append(f"paired percentile bootstrap over val images: {spec['resamples']} resamples, seed {spec['seed']}, "
                 f"{round(100 * spec['level'])}% intervals (same resamples for A and B); McNemar exact two-sided; "
                 f"Holm over {cmp.holm_tests} test(s)")
    headers = ["dataset", "task", "eval", "n", "A", "B", "A - B [CI]", "A only", "B only", "McNemar p", "Holm p"]
    rows = [[r["dataset"] + (f" ({r['train_subset']})" if r.get("train_subset") else ""), r["task"], r["eval"], r["n"], _num(r["a"]), _num(r["b"]), fmt.signed_ci(r["diff"], r["ci"]),
             "-" if r["a_only"] is None else r["a_only"], "-" if r["b_only"] is None else r["b_only"],
             fmt.pvalue(r["p_mcnemar"]), fmt.pvalue(r["p_holm"])] for r in cmp.rows]
    return "\n".join(lines) + "\n" + tabulate(rows, headers=headers, disable_numparse=True)


def run(args: argparse.Namespace) -> int:
    from satbench.stats.compare import compare

    cmp = compare(args.a, args.b, results_dir=args.results_dir, task=args.task, dataset=args.dataset, k=args.k,
                  seed=args.seed, resamples=args.resamples, level=args.level)
    if args.format == "json":
        print(json.dumps(cmp.as_json(), indent=2))
    elif args.format == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in cmp.rows:
            w.writerow({**r, "ci_lo": r["ci"][0], "ci_hi": r["ci"][1]})
    else:
        print(render_table(cmp))
    return 0
