"""``satbench seg-predict``: PNG overlays (image | ground truth | prediction) from a trained segmentor."""

from __future__ import annotations

import argparse

from ._common import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("seg-predict", help="write PNG overlays of image, ground truth and prediction",
                       description="Predict a few tiles with a trained UperNet and write one PNG per tile "
                                   "(image | ground truth | prediction overlay).")
    p.add_argument("--work-dir", default=None,
                   help="a `satbench run --task segmentation` work dir (uses its config and final_weights.pth)")
    p.add_argument("--config", default=None, help="mmseg config .py (default: <work-dir>/satbench_seg_config.py)")
    p.add_argument("--weights", default=None, help="segmentor weights (default: <work-dir>/final_weights.pth)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow mmengine iter_N.pth checkpoints (unpickles non-tensor objects)")
    p.add_argument("--images", required=True, help="an image file or a folder of tiles")
    p.add_argument("--ann-dir", default=None, help="folder with same-name label PNGs (shown as ground truth)")
    p.add_argument("--limit", type=positive_int, default=4, help="at most this many tiles (default 4)")
    p.add_argument("--out", required=True, help="output folder for the PNGs")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import SatbenchError

    config, weights = args.config, args.weights
    if args.work_dir:
        wd = Path(args.work_dir)
        config = config or str(wd / "satbench_seg_config.py")
        weights = weights or str(wd / "final_weights.pth")
    if not config or not weights:
        raise SatbenchError("seg-predict needs --work-dir, or both --config and --weights")
    if not Path(config).is_file():
        raise SatbenchError(f"config {config} does not exist")
    from ..seg.predict import list_images, load_segmentor, write_overlays

    images = list_images(args.images, args.limit)
    model = load_segmentor(config, weights, device=args.device, trust_checkpoint=args.trust_checkpoint)
    written = write_overlays(model, images, args.out, ann_dir=Path(args.ann_dir) if args.ann_dir else None)
    for w in written:
        print(w)
    return 0
