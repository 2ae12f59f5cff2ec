"""``satbench data prepare NAME --src DIR --out ROOT``: raw download -> satbench's dataset layout."""

from __future__ import annotations

import argparse
import json

from satbench.config.argtypes import positive_int
from satbench.errors import DataError


def register(dsub: argparse._SubParsersAction) -> None:
    p = dsub.add_parser("prepare", help="convert a raw download into <ROOT>/<name>/images/<class>/... + split files",
                        description="Convert a raw dataset download into satbench's layout (files hard-linked or "
                                    "copied) and check that every split entry exists.")
    p.add_argument("name", help="dataset name (eurosat, resisc45, uc_merced, whu-rs19, rs_c11, siri-whu, ...)")
    p.add_argument("--src", required=True, help="the raw download (an extra top folder is fine)")
    p.add_argument("--out", required=True, help="data root; the dataset goes to <out>/<name>/")
    p.add_argument("--splits", default=None, help="folder with train.txt/val.txt (default: the official split shipped with satbench)")
    p.add_argument("--mode", choices=["auto", "link", "copy"], default="auto",
                   help="hard-link files (auto falls back to copying across filesystems) or copy them")
    p.add_argument("--any-extension", action="store_true",
                   help="accept files whose extension differs from the split entry (e.g. .jpg re-encodings of .tif); "
                        "the written split files name the files present")
    p.add_argument("--clip-size", type=positive_int, default=None,
                   help="potsdam/vaihingen: tile size of mmseg's converter (default 512)")
    p.add_argument("--stride-size", type=positive_int, default=None,
                   help="potsdam/vaihingen: the converter's --stride_size (default 256; mmseg 1.2.2 steps by the clip size)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=_prepare)


def _prepare(args: argparse.Namespace) -> int:
    from satbench.data.prepare import get_preparer

    preparer = get_preparer(args.name)
    opts = {"mode": args.mode}
    if args.splits:
        opts["splits"] = args.splits
    if args.any_extension:
        opts["any_extension"] = True
    for key in ("clip_size", "stride_size"):
        value = getattr(args, key)
        if value is not None:
            from satbench.data.catalog import find_dataset_spec

            spec = find_dataset_spec(args.name)
            if spec is None or spec.kind != "segmentation" or spec.name == "loveda":
                raise DataError(f"--{key.replace('_', '-')} applies to potsdam and vaihingen only, not {args.name}")
            if value < 1:
                raise DataError(f"--{key.replace('_', '-')} must be a positive number of pixels, got {value}")
            opts[key] = value
    report = preparer(args.src, args.out, **opts)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for k, v in report.items():
            print(f"{k:>20}: {v}")
    missing = report.get("missing", {})
    if missing and any(missing.values()):
        ex = [e for lst in report.get("missing_examples", {}).values() for e in lst][:3]
        raise DataError(f"{args.name}: {sum(missing.values())} split entries have no file under {report.get('class_root')} "
                        f"(first: {', '.join(ex)})")
    return 0
