"""``satbench data check DIR``: validate a dataset folder (split entries, classes, optionally decode every image)."""

from __future__ import annotations

import argparse

from satbench.config.argtypes import positive_int


def register(dsub: argparse._SubParsersAction) -> None:
    p = dsub.add_parser("check", help="validate a dataset folder in satbench's layout",
                        description="Check a dataset folder: split entries exist and name known classes, no class is "
                                    "empty, and with --decode every image decodes.")
    p.add_argument("dataset", help="dataset folder, a name under --data-root / $SATBENCH_DATA, or ucm-mini")
    p.add_argument("--data-root", default=None, help="folder holding <name>/ datasets (default $SATBENCH_DATA)")
    p.add_argument("--decode", action="store_true", help="also decode every image of both splits")
    p.add_argument("--normalization", default=None,
                   help="for folders that are not a known dataset: a preset or mean=..;std=.. (or 'compute' to print stats)")
    p.add_argument("--native-size", type=positive_int, default=None, help="for folders that are not a known dataset")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from satbench.data.images import read_rgb
    from satbench.data.catalog import resolve_normalization
    from satbench.data.scene import compute_normalization, open_scene_dataset

    compute = args.normalization == "compute"
    norm = resolve_normalization(args.normalization) if args.normalization and not compute else None
    ds = open_scene_dataset(args.dataset, data_root=args.data_root, normalization=norm, native_size=args.native_size)
    report = ds.check()
    if args.decode:
        sizes: dict[tuple[int, int], int] = {}
        for split in ("train", "val"):
            for s in tqdm(ds.samples(split), desc=f"decode {split}", disable=args.no_progress, leave=False):
                img = read_rgb(s.path)
                sizes[img.size] = sizes.get(img.size, 0) + 1
        report["decoded"] = sum(sizes.values())
        report["image_sizes"] = ", ".join(f"{w}x{h}: {n}" for (w, h), n in sorted(sizes.items(), key=lambda x: -x[1])[:5])
    if compute:
        st = compute_normalization(ds, "train", progress=not args.no_progress)
        report["computed_mean"] = [round(v, 4) for v in st.mean]
        report["computed_std"] = [round(v, 4) for v in st.std]
    report["official_split"] = {k: v.official_match for k, v in ds.splits.items()}
    for k, v in report.items():
        print(f"{k:>15}: {v}")
    print("ok")
    return 0
