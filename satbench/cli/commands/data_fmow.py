"""``satbench data fmow-csv``: the fMoW-RGB CSV of SatDINO from the fMoW baseline's ``training_struct.json``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fmow-csv", help="write SatDINO's fMoW CSV (train or val) from training_struct.json",
                       description="satdino.fmow_prepare.data_to_csv: columns id, image_path, feature_path, split, "
                                   "category_name, category_idx, gsd, hour, month, year (63-class fMoW-baseline order).")
    p.add_argument("--struct", required=True, help="training_struct.json written by the fMoW baseline's prepare_data")
    p.add_argument("--split", required=True, choices=["train", "val"])
    p.add_argument("--out", required=True, help="CSV to write (atomically)")
    p.add_argument("--data-root", default=None,
                   help="where the *_features.json files now live (joined with the last 7 path components) when the "
                        "struct's absolute paths no longer exist")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from satbench.data.fmow import write_fmow_csv

    n = write_fmow_csv(args.struct, args.split, args.out, data_root=args.data_root)
    print(f"wrote {n} {args.split} rows to {args.out}")
    return 0
