"""``satbench leaderboard``: result records + the papers' numbers -> one document on stdout (md / csv / latex / html);
status lines on stderr. ``--out DIR`` also writes one file per table and the plots (html: one ``index.html``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from satbench.leaderboard import FORMATS, INTERVALS

    p = sub.add_parser("leaderboard", help="tables of all result records next to the papers' numbers",
                       description="Build the papers' tables (kNN, fine-tuning, linear, segmentation) from result records: "
                                   "paper rows (labelled paper + source) and run rows (model, weights, protocol, settings), "
                                   "with a delta to the paper only for like-for-like runs. stdout is exactly the document; "
                                   "status lines go to stderr.")
    p.add_argument("--results-dir", default=None, help="records folder (default $SATBENCH_RESULTS or ./results/runs)")
    p.add_argument("--task", default=None,
                   help="only this table (knn, finetune, linear, segmentation or a plug-in task's; default: all)")
    p.add_argument("--format", choices=list(FORMATS), default="md",
                   help="md (GitHub markdown), csv (tidy: one line per number), latex (booktabs) or html (one "
                        "self-contained page); default md")
    p.add_argument("--interval", choices=list(INTERVALS), default="pm",
                   help="how 95%% intervals (summary.ci) are shown: pm = value ± half-width, bracket = value [lo, hi]")
    p.add_argument("--out", default=None,
                   help="also write files into this folder: html -> index.html (tables, plots, records); other formats "
                        "-> one file per table plus knn_scales.png")
    p.set_defaults(func=_leaderboard)


def _leaderboard(args: argparse.Namespace) -> int:
    from satbench.errors import DataError
    from satbench.io.atomic import atomic_write_bytes
    from satbench.leaderboard import build_tables, knn_scales_png, load_references, render, render_document
    from satbench.leaderboard.layout import per_scale_tasks
    from satbench.leaderboard.escape import plain
    from satbench.records.results import default_results_dir, read_records

    folder = Path(args.results_dir) if args.results_dir else default_results_dir()
    if args.results_dir and not folder.is_dir():
        raise DataError(f"--results-dir {folder}: no such folder (result records are the *.json files that "
                        f"`satbench run` writes there)")
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: exists and is not a folder")
    records = read_records(folder)
    from satbench.records.fingerprints import clash_lines, clashes

    for line in clash_lines(clashes(records)):
        print(plain(f"satbench: warning: {line}"), file=sys.stderr)
    refs = load_references()
    tables = build_tables(records, args.task, refs)
    print(plain(f"{len(records)} records in {folder}"), file=sys.stderr)
    want_plot = out is not None or args.format == "html"
    pngs = [knn_scales_png(records, refs, t) for t in per_scale_tasks() if want_plot and args.task in (None, t)]
    png = next((p for p in pngs if p), None)
    plots = [("kNN top-1 vs scale", png)] if png else []
    document = render_document(tables, args.format, args.interval, plots=plots, records=records,
                               subtitle=f"{len(records)} records") if args.format == "html" else \
        render_document(tables, args.format, args.interval)
    written = []
    if out is not None:
        if args.format == "html":
            written.append(atomic_write_bytes(out / "index.html", document.encode()))
        else:
            ext = {"md": "md", "csv": "csv", "latex": "tex"}[args.format]
            for i, t in enumerate(tables):
                text = render(t, args.format, args.interval)
                written.append(atomic_write_bytes(out / f"{i:02d}_{t.key}.{ext}", text.encode()))
        if png:
            written.append(atomic_write_bytes(out / "knn_scales.png", png))
    sys.stdout.write(document)
    sys.stdout.flush()
    for p in written:
        print(plain(f"wrote {p}"), file=sys.stderr)
    return 0
