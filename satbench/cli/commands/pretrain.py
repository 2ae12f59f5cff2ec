"""``satbench pretrain``: SatDINO pretraining from a config in ``tasks/pretrain/`` (single process or torchrun)."""

from __future__ import annotations

import argparse
from pathlib import Path

from satbench.errors import SatbenchError
from satbench.io.locking import holds_output_lock


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain", help="pretrain a SatDINO ViT (as main_satdino.py; torchrun for several processes)",
        description="Pretrain a SatDINO ViT exactly as the official main_satdino.py. Several processes / nodes: "
                    "torchrun --nproc_per_node N [--nnodes M --rdzv-endpoint HOST:PORT] -m satbench.cli pretrain ...")
    p.add_argument("--config", required=True, help="a pretraining config name (tasks/pretrain/, e.g. satdino-vit_small-16, "
                                                   "satdino-demo-tiny) or a YAML file")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key (YAML value, e.g. --set epochs=100 --set precision=bf16); repeatable")
    p.add_argument("--data", default="ucm-mini",
                   help="a fMoW CSV, an image_path,gsd CSV, an image folder, a .txt list, or a bundled dataset "
                        "(default ucm-mini, the bundled UC Merced subset at 0.3 m)")
    p.add_argument("--data-root", default=None, help="root that CSV image paths are relative to (default: the CSV's folder)")
    p.add_argument("--gsd", type=float, default=None, help="constant GSD in metres/pixel for sources without a gsd column")
    p.add_argument("--output", required=True, help="output folder: checkpoint.pth, teacher.pth, CSV logs")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/checkpoint.pth")
    p.add_argument("--allow-cpu-fp16", action="store_true",
                   help="run precision fp16 (float16 autocast + GradScaler) on a CPU: emulated and slow, for checking "
                        "the paper's fp16 numerics without a GPU")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--knn-dataset", default="ucm-mini",
                   help="dataset of the kNN monitor that runs every knn_freq epochs (--set knn_freq=N)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


@holds_output_lock(lambda a: a["args"].output, "pretrain --output")  # one run per folder (rank 0 holds it)
def run(args: argparse.Namespace) -> int:
    from satbench.pretrain.config import load_config, resolved
    from satbench.pretrain.data import open_pretrain_source
    from satbench.runtime.distributed import init_distributed, shutdown
    from satbench.pretrain.evaluate import make_knn_monitor
    from satbench.pretrain.trainer import Trainer

    proto = load_config(args.config, args.sets)
    cfg = resolved(proto)
    out = Path(args.output)
    if (out / "checkpoint.pth").exists() and not args.resume:
        raise SatbenchError(f"{out} already holds a checkpoint.pth; pass --resume to continue it or choose another --output")
    gsd = args.gsd  # None: a bundled dataset's catalog GSD (recorded in the checkpoint)
    ctx = init_distributed(args.device)
    try:
        source = open_pretrain_source(args.data, gsd=gsd, data_root=args.data_root, temporal=cfg["temporal_dataset"])
        monitor = make_knn_monitor(args.knn_dataset) if cfg["knn_freq"] else None
        trainer = Trainer(proto, source, out, ctx=ctx, progress=not args.no_progress, monitor=monitor,
                          allow_cpu_fp16=args.allow_cpu_fp16)
        if args.resume:
            start = trainer.resume()
            if ctx.is_main:
                print(f"resumed from {out / 'checkpoint.pth'} at epoch {start}/{cfg['epochs']}")
        history = trainer.train()
        if ctx.is_main:
            from tabulate import tabulate

            rows = [[h.epoch + 1, f"{h.loss:.4f}", f"{h.dino_loss:.4f}", f"{h.gsd_err:.4f}", f"{h.seconds:.1f}",
                     f"{h.images / max(h.seconds, 1e-9):.1f}", h.extra.get("knn_top1", "")] for h in history]
            if rows:
                print(tabulate(rows, headers=["epoch", "loss", "dino", "gsd_err", "s", "img/s", "knn top1"]))
            print(f"teacher: {out / 'teacher.pth'} (load with satbench run --weights)")
    finally:
        shutdown(ctx)
    return 0
