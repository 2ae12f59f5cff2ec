"""``satbench seg-config``: write a complete runnable mmseg config for one model x dataset x crop."""

from __future__ import annotations

import argparse

from satbench.config.argtypes import positive_float, positive_int
from satbench.cli.commands._common import add_model_args, model_build_options


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("seg-config", help="write a runnable mmsegmentation UperNet config for a model",
                       description="Write a complete mmseg config (UperNet + satbench backbone) for mmseg's own tools "
                                   "(tools/train.py, tools/test.py); it imports satbench.seg through custom_imports.")
    add_model_args(p, default_model="satdino-vit_small-16")
    p.add_argument("--dataset", required=True, choices=["potsdam", "vaihingen", "loveda"])
    p.add_argument("--crop", type=int, choices=[224, 512], required=True)
    p.add_argument("--data-root", default=None, help="the dataset folder (img_dir/, ann_dir/); default $SATBENCH_DATA/<name>")
    p.add_argument("--gpus", type=positive_int, default=1, help="number of GPUs mmseg will use: the total batch is split over them")
    p.add_argument("--seg-batch", type=positive_int, default=None, help="total images per iteration (default: the protocol's 8)")
    p.add_argument("--iters", type=positive_int, default=None, help="iterations (default: the protocol's 80000; warm-up scaled)")
    p.add_argument("--protocol", default=None, help="segmentation protocol (default upernet-v1)")
    p.add_argument("--frozen", action="store_true", help="freeze the backbone")
    p.add_argument("--layer-decay", type=positive_float, default=None, help="layer-wise lr decay rate (e.g. 0.65)")
    p.add_argument("--work-dir", default=None, help="work_dir written into the config")
    p.add_argument("--out", default=None, help="output .py (default: print to stdout)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from satbench.errors import SatbenchError
    from satbench.seg.config import build_config, write_config

    opts = model_build_options(args)
    if args.weights not in (None, "random"):
        from pathlib import Path

        if not Path(args.weights).is_file():
            raise SatbenchError(f"--weights {args.weights}: no such file")
        args.weights = str(Path(args.weights).resolve())
    from satbench.config.seg_settings import SegmentationSettings
    from satbench.config.protocols import load_protocol

    recipe = load_protocol(args.protocol or "upernet-v1", task="segmentation").settings(SegmentationSettings)
    cfg = build_config(args.model, args.dataset, args.crop, weights=args.weights, seed=args.seed,
                       data_root=args.data_root, frozen=True if args.frozen else None, layer_decay=args.layer_decay,
                       build_options=opts, trust_checkpoint=args.trust_checkpoint, total_batch=args.seg_batch,
                       world_size=args.gpus, iters=args.iters, work_dir=args.work_dir, recipe=recipe)
    if args.out:
        path = write_config(cfg, args.out)
        print(f"wrote {path} ({args.model}, {args.dataset}, crop {args.crop}, "
              f"{cfg.train_dataloader.batch_size} images per GPU x {args.gpus} GPU(s))")
    else:
        print(cfg.pretty_text)
    return 0
