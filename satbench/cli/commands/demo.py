"""``satbench demo``: a short offline SatDINO pretraining on the bundled ucm-mini images, then kNN of the new
teacher against the same architecture at random init, written as result records and shown as a table.

Both kNN runs pass the features guard of every kNN run (:mod:`satbench.eval.feature_guard`). Measured: the
default 20-epoch teacher has 0 of 192 flat dimensions at all 4 scales (median std/rms 0.89-0.92, min 0.34-0.43;
random init 0.86-0.89, min 0.27-0.34), so the demo passes honestly; a teacher whose features did collapse stops the
demo at the guard's one line (``--allow-collapsed-features`` records it, marked)."""

from __future__ import annotations

import argparse
from pathlib import Path

from satbench.io.locking import holds_output_lock


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="offline demo: pretrain a tiny SatDINO on ucm-mini, then kNN vs random init",
                       description="Pretrain satdino-demo-tiny on the bundled UC Merced subset (0.3 m GSD), then run "
                                   "multi-scale kNN (satdino-knn-v1, k=20) for the new teacher and for random init.")
    p.add_argument("--output", default="satbench-demo", help="folder for the checkpoint, teacher and logs (default ./satbench-demo)")
    p.add_argument("--results-dir", default=None, help="where to write the two kNN records (default: $SATBENCH_RESULTS or ./results)")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of satdino-demo-tiny (e.g. --set epochs=5)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo in --output")
    p.add_argument("--allow-collapsed-features", action="store_true",
                   help="record the kNN rows of a teacher whose features collapsed (marked) instead of stopping at "
                        "the features guard's one line")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


@holds_output_lock(lambda a: a["args"].output, "demo --output")  # one run per folder
def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from satbench.errors import SatbenchError
    from satbench.pretrain.config import load_config, resolved
    from satbench.pretrain.data import open_pretrain_source
    from satbench.pretrain.evaluate import knn_eval
    from satbench.pretrain.trainer import Trainer
    from satbench.records.results import write_record

    from satbench.records.results import check_results_folder

    check_results_folder(args.results_dir)
    proto = load_config("satdino-demo-tiny", args.sets)
    cfg = resolved(proto)
    out = Path(args.output)
    if (out / "checkpoint.pth").exists() and not args.resume:
        raise SatbenchError(f"{out} already holds a demo checkpoint; pass --resume or choose another --output")
    trainer = Trainer(proto, open_pretrain_source("ucm-mini"), out, progress=not args.no_progress)
    if args.resume:
        trainer.resume()
    trainer.train()
    rows, records = [], []
    for label, weights in (("pretrained (demo)", out / "teacher.pth"), ("random init", "random")):
        rec = knn_eval(weights, cfg, seed=cfg["seed"], progress=not args.no_progress,
                       allow_collapsed_features=args.allow_collapsed_features)
        rec.setdefault("extra", {})["demo"] = label
        path = write_record(rec, args.results_dir)
        records.append(rec)
        s = rec["summary"]
        rows.append([label, rec["model"], f"{s['top1_avg']:.2f}",
                     *[f"{v:.2f}" for v in s["top1_per_scale"].values()], str(path)])
    scales = list(rec["summary"]["top1_per_scale"])
    from satbench.eval.feature_guard import warning_line

    loud = [line for line in (warning_line(r.get("features")) for r in records) if line]
    print(tabulate(rows, headers=["weights", "model", "kNN top1 avg", *[f"@{s}" for s in scales], "record"]))
    from satbench.leaderboard import build_tables, render

    print()
    for table in build_tables(records, "knn"):
        print(render(table, "md"))
        print()
    for line in loud:
        print(line)
    return 0
