"""``satbench run --task segmentation``: UperNet through mmsegmentation (Potsdam, Vaihingen, LoveDA)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import SatbenchError
from ._common import model_build_options, positive_float, positive_int
from ._tasks import TaskCLI, register_task


def _add_once(group: argparse._ArgumentGroup, flag: str, **kw: Any) -> None:
    """Add ``flag`` unless another task already added it (shared options: --resume, --data-root, --lr...)."""
    if flag not in group._option_string_actions:
        group.add_argument(flag, **kw)


def _layers(value: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 4 comma-separated block indices, got {value!r}") from None
    if len(out) != 4:
        raise argparse.ArgumentTypeError(f"expected 4 comma-separated block indices, got {value!r}")
    return out


def add_arguments(g: argparse._ArgumentGroup) -> None:
    _add_once(g, "--crop", type=int, choices=[224, 512], default=512, help="segmentation: training crop (default 512)")
    _add_once(g, "--iters", type=positive_int, default=None,
              help="segmentation: iterations (default: the recipe's 80000; the warm-up is scaled proportionally)")
    _add_once(g, "--work-dir", default=None, help="segmentation: mmengine work dir (default work_dirs/seg/<model>_<dataset>_<crop>)")
    _add_once(g, "--seg-format", choices=["potsdam", "vaihingen", "loveda"], default=None,
              help="segmentation: which dataset a --dataset DIR holds (default: from the folder name)")
    _add_once(g, "--frozen", action="store_true", help="segmentation: freeze the backbone (default: fine-tune it; recorded)")
    _add_once(g, "--layer-decay", type=positive_float, default=None,
              help="segmentation: layer-wise lr decay rate, e.g. 0.65 (default: none; recorded)")
    _add_once(g, "--seg-batch", type=positive_int, default=8,
              help="segmentation: total images per iteration over all processes (default 8; --batch-size does not apply)")
    _add_once(g, "--seg-layers", type=_layers, default=None,
              help="segmentation: 4 tapped blocks, e.g. 3,5,7,11 (default 3,5,7,11 at depth 12, 7,11,15,23 at depth 24)")
    _add_once(g, "--seg-cfg-options", nargs="+", default=None, metavar="KEY=VALUE",
              help="segmentation: mmengine config overrides applied last (like mmseg's --cfg-options; recorded)")
    _add_once(g, "--resume", action="store_true", help="resume from the latest checkpoint in the work/output dir")
    _add_once(g, "--data-root", default=None, help="folder holding <name>/ datasets (default $SATBENCH_DATA)")
    _add_once(g, "--num-workers", type=int, default=2, help="data-loading worker processes")
    _add_once(g, "--lr", type=positive_float, default=None, help="learning rate (default: the protocol's)")


def parse_cfg_options(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; values parsed as Python/JSON literals when possible (``a=1``, ``b=[1,2]``)."""
    import ast

    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise SatbenchError(f"--seg-cfg-options {item!r}: expected KEY=VALUE")
        key, raw = item.split("=", 1)
        try:
            out[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            out[key] = raw
    return out


def _run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    import torch

    if args.dataset is None:
        raise SatbenchError("--task segmentation needs --dataset potsdam|vaihingen|loveda|DIR")
    if args.device not in ("auto", "cuda", "cpu") and not str(args.device).startswith("cuda:"):
        raise SatbenchError(f"--device {args.device!r}: expected auto, cpu, cuda or cuda:N")
    if args.device == "cpu" and torch.cuda.is_available():
        raise SatbenchError("--device cpu with a visible GPU: mmengine picks the GPU; set CUDA_VISIBLE_DEVICES= to train on CPU")
    if str(args.device).startswith("cuda") and not torch.cuda.is_available():
        raise SatbenchError(f"--device {args.device} requested but CUDA is not available here")
    if args.num_workers < 0:
        raise SatbenchError(f"--num-workers must be >= 0, got {args.num_workers}")
    from ..seg.config import SEG_DATASETS, get_seg_dataset
    from ..seg.runner import run_segmentation

    dataset = args.dataset
    if dataset in SEG_DATASETS and args.data_root:
        dataset = str(Path(args.data_root) / get_seg_dataset(dataset).folder)
        fmt = args.seg_format or args.dataset
    else:
        fmt = args.seg_format
    opts = parse_cfg_options(args.seg_cfg_options)
    if args.lr is not None:
        opts["optim_wrapper.optimizer.lr"] = args.lr
    if args.no_progress:
        opts.setdefault("log_level", "WARNING")
    rec = run_segmentation(
        args.model, dataset, args.crop, seg_format=fmt, weights=args.weights, seed=args.seed,
        work_dir=args.work_dir, iters=args.iters, frozen=args.frozen, layer_decay=args.layer_decay,
        out_indices=args.seg_layers, total_batch=args.seg_batch, num_workers=args.num_workers,
        resume="auto" if args.resume else None, build_options=model_build_options(args),
        trust_checkpoint=args.trust_checkpoint, bf16=args.bf16, cfg_options=opts, results_dir=args.results_dir)
    if int(os.environ.get("RANK", "0")) == 0:
        from tabulate import tabulate

        m = rec["metrics"]
        rows = [[rec["model"], rec["dataset"]["name"], args.crop, rec["protocol"]["params"]["iters"],
                 m.get("mIoU"), m.get("mFscore"), m.get("aAcc")]]
        print(tabulate(rows, headers=["model", "dataset", "crop", "iters", "mIoU %", "mFscore %", "aAcc %"]))
        iou = m["per_class"].get("IoU", {})
        print(tabulate([[k, v] for k, v in iou.items()], headers=["class", "IoU %"]))
        print(f"record: {rec.get('_path')}  work dir: {rec['extra']['work_dir']}")
    return 0


register_task(TaskCLI("segmentation", "UperNet semantic segmentation via mmsegmentation (Potsdam, Vaihingen, LoveDA)",
                      add_arguments, _run))
