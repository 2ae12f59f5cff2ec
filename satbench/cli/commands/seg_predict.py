"""``satbench seg-predict``: PNG overlays (image | ground truth | prediction) from a trained segmentor."""

from __future__ import annotations

import argparse

from satbench.config.argtypes import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("seg-predict", help="write PNG overlays of image, ground truth and prediction",
                       description="Predict a few tiles with a trained UperNet and write one PNG per tile "
                                   "(image | ground truth | prediction overlay).")
    p.add_argument("--work-dir", default=None,
                   help="a `satbench run --task segmentation` work dir (uses its satbench_seg_run.json, read as "
                        "data, and final_weights.pth)")
    p.add_argument("--config", default=None,
                   help="a run's satbench_seg_run.json (default: <work-dir>/satbench_seg_run.json), or an mmseg "
                        "config .py (executed, so only with --trust-config)")
    p.add_argument("--weights", default=None, help="segmentor weights (default: <work-dir>/final_weights.pth)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow mmengine iter_N.pth checkpoints (unpickles non-tensor objects)")
    p.add_argument("--trust-config", action="store_true",
                   help="allow executing a Python config (mmengine runs it as code); without it only a run's "
                        "satbench_seg_run.json (or the unchanged satbench_seg_config.py beside it) is used")
    p.add_argument("--images", required=True, help="an image file or a folder of tiles")
    p.add_argument("--ann-dir", default=None, help="folder with same-name label PNGs (shown as ground truth)")
    p.add_argument("--limit", type=positive_int, default=4, help="at most this many tiles (default 4)")
    p.add_argument("--out", required=True, help="output folder for the PNGs")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.set_defaults(func=_run)


# satbench.seg.run_args.RUN_ARGS_NAME and satbench.seg.runner.CONFIG_NAME (not imported: importing satbench.seg
# loads mmseg, which an error about a missing work dir does not need).
RUN_ARGS_NAME = "satbench_seg_run.json"
CONFIG_NAME = "satbench_seg_config.py"


def _work_dir_config(wd, trust_config: bool) -> str:
    """The config of a run's work dir: its satbench_seg_run.json, else (only when trusted) its .py dump."""
    import os

    from satbench.errors import SatbenchError

    record, py = wd / RUN_ARGS_NAME, wd / CONFIG_NAME
    if os.path.lexists(record):
        return str(record)
    if not os.path.lexists(py):
        raise SatbenchError(f"{wd}: no {RUN_ARGS_NAME}, and {py} does not exist either: not a "
                            f"`satbench run --task segmentation` work dir")
    if not trust_config:
        raise SatbenchError(f"{wd} has no {RUN_ARGS_NAME} and {py} is a Python config, which is code: seg-predict "
                            f"executes it only with --trust-config")
    return str(py)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from satbench.errors import SatbenchError

    config, weights = args.config, args.weights
    if args.work_dir:
        wd = Path(args.work_dir)
        weights = weights or str(wd / "final_weights.pth")
        config = config or _work_dir_config(wd, args.trust_config)
    if not config or not weights:
        raise SatbenchError("seg-predict needs --work-dir, or both --config and --weights")
    from satbench.seg.predict import list_images, load_segmentor, write_overlays

    images = list_images(args.images, args.limit)
    model = load_segmentor(config, weights, device=args.device, trust_checkpoint=args.trust_checkpoint,
                           trust_config=args.trust_config)
    written = write_overlays(model, images, args.out, ann_dir=Path(args.ann_dir) if args.ann_dir else None)
    for w in written:
        print(w)
    return 0
