"""``satbench extract``: features of an image folder or split file to ``.npy`` + a JSON sidecar."""

from __future__ import annotations

import argparse
from pathlib import Path

from satbench.config.argtypes import positive_int
from satbench.cli.commands._common import add_device_args, add_model_args, load_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract", help="extract normed-CLS features of images to .npy",
                       description="Extract features with the kNN protocol's transform: Resize(round(S*8/7), bicubic) + "
                                   "CenterCrop(S), then the normalisation, then the backbone's normed CLS token.")
    add_model_args(p, default_model="satdino-vit_small-16")
    p.add_argument("--images", required=True, type=Path, help="an image folder (recursive, sorted) or a split file (file order)")
    p.add_argument("--size", type=positive_int, default=224, help="input size S in px (default 224)")
    p.add_argument("--output", required=True, type=Path, help="output .npy; the sidecar is written next to it as .json")
    p.add_argument("--normalization", default=None,
                   help="the model's declared normalisation (default), 'dataset' (SatDINO's per-dataset table by folder name), "
                        "a preset name, or mean=a,b,c;std=d,e,f")
    p.add_argument("--input-res", default=None, metavar="VALUE|protocol",
                   help="Scale-MAE only: the input resolution ratio passed to the backbone (recorded in the sidecar). "
                        "Default 'protocol': 224/size, as Scale-MAE's own kNN protocol scalemae-knn-v2 (its eval_gsd; "
                        "2.0 at --size 112); a positive number sets it, e.g. 1.0 = the official code without --eval_gsd")
    p.add_argument("--allow-collapsed-features", action="store_true",
                   help="write features that have collapsed (more than half the dimensions nearly constant across the "
                        "images) instead of failing; recorded in the sidecar (features_check). NaN / inf always fail")
    p.add_argument("--no-progress", action="store_true")
    add_device_args(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from satbench.runtime.distributed import init_distributed, shutdown
    from satbench.eval.extract_folder import extract_to_file

    info = init_distributed(args.device)  # under torchrun: each rank extracts a shard, rank 0 writes the file
    try:
        loaded = load_from_args(args)
        side = extract_to_file(loaded, args.images, args.size, args.output, normalization=args.normalization,
                               device=str(info.device), bf16=args.bf16, batch_size=args.batch_size,
                               progress=not args.no_progress and info.is_main, input_res=args.input_res, dist=info,
                               allow_collapsed_features=args.allow_collapsed_features)
    finally:
        shutdown(info)
    if side is not None:
        from satbench.eval.feature_guard import warning_line

        line = warning_line(side.get("features_check"))
        if line:
            print(line)
        print(f"wrote {side['shape'][0]} x {side['shape'][1]} features to {args.output} "
              f"(sidecar {args.output.with_suffix('.json')}) in {side['seconds']:.1f} s"
              + (f" on {info.world_size} processes" if info.world_size > 1 else ""))
    return 0
