"""``satbench leaderboard``: result records + the papers' numbers -> tables (md / csv / html) and a kNN-vs-scale plot."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("leaderboard", help="tables of all result records next to the papers' numbers",
                       description="Build the papers' tables (kNN, fine-tuning, linear, segmentation) from result records, "
                                   "with reference rows from results/reference and the delta of each comparable run.")
    p.add_argument("--results-dir", default=None, help="records folder (default $SATBENCH_RESULTS or ./results/runs)")
    p.add_argument("--task", choices=["knn", "linear", "finetune", "segmentation"], default=None,
                   help="only this task's table(s) (default: all)")
    p.add_argument("--format", choices=["md", "csv", "html"], default="md", help="output format (default md)")
    p.add_argument("--out", default=None, help="also write the tables and knn_scales.png into this folder")
    p.set_defaults(func=_leaderboard)


def _leaderboard(args: argparse.Namespace) -> int:
    from ..io import atomic_write_bytes
    from ..leaderboard import build_tables, plot_knn_scales, render
    from ..results import default_results_dir, read_records

    folder = Path(args.results_dir) if args.results_dir else default_results_dir()
    if args.results_dir and not folder.is_dir():
        from ..errors import DataError

        raise DataError(f"--results-dir {folder}: no such folder (result records are the *.json files that "
                        f"`satbench run` writes there)")
    records = read_records(folder)
    tables = build_tables(records, args.task)
    print(f"{len(records)} records in {folder}\n")
    written = []
    for i, t in enumerate(tables):
        text = render(t, args.format)
        print(text if args.format != "csv" else f"# {t.title}\n{text}")
        if args.out:
            slug = t.title.split(":")[0].split(" (")[0].lower().replace(" ", "_").replace("-", "")
            path = Path(args.out) / f"{i:02d}_{slug}.{args.format}"
            atomic_write_bytes(path, text.encode())
            written.append(path)
    if args.out and args.task in (None, "knn"):
        png = plot_knn_scales(records, Path(args.out) / "knn_scales.png")
        if png:
            written.append(png)
    for p in written:
        print(f"wrote {p}")
    return 0
