"""Task ``segmentation``: UperNet through mmsegmentation on Potsdam, Vaihingen and LoveDA (``upernet-v1``).

The recipe is the protocol (``tasks/segmentation/upernet-v1.yaml``, typed by
:class:`~satbench.config.seg_settings.SegmentationSettings`); the run's crop (224 or 512) picks the shipped mmseg
config. Training goes through mmengine's Runner (:mod:`satbench.seg.runner`, which needs mmsegmentation: imported only
when a segmentation run starts). Under torchrun, rank 0 writes the one record.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from satbench.config.argtypes import positive_float, positive_int
from satbench.errors import SatbenchError
from satbench.config.seg_settings import SegmentationSettings
from satbench.stats.attach import add_seed_arguments, add_statistics_arguments, ci_text
from satbench.stats.attach import run_options as statistics_run_options
from satbench.eval.corruption_eval import add_corruption_arguments
from satbench.eval.corruption_eval import run_options as corruption_run_options
from satbench.eval.task import Headline, RunOptions, Task, register_task


def _layers(value: str) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 4 comma-separated block indices, got {value!r}") from None
    if len(out) != 4:
        raise argparse.ArgumentTypeError(f"expected 4 comma-separated block indices, got {value!r}")
    return out


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


def segmentation_feature_check(model: str, dataset: str, allow_collapsed: bool) -> Any:
    """The features guard of every task (:mod:`satbench.eval.feature_guard`) for :func:`satbench.seg.runner.
    run_segmentation`: the backbone's patch features on the first val tiles (:mod:`satbench.seg.feature_sample`),
    checked before the decoder trains; returns the record's ``features`` section (the sample described under
    ``sample``)."""
    def check(feats: Any, sample: dict[str, Any]) -> dict[str, Any]:
        from satbench.eval.feature_guard import array_stats, fingerprint, judge, section

        stats = array_stats(feats)
        view = f"val{sample['tiles']}-w{sample['window'][0]}x{sample['window'][1]}-block{sample['block']}"
        judge(stats, f"{model} on {dataset}, backbone patch features of the first {sample['tiles']} val tiles "
                     f"(block {sample['block']})", allow_collapsed=allow_collapsed, rows="patches",
              across=f"patches of {sample['tiles']} val tiles")
        per_view = {view: {**stats, "fingerprint": fingerprint(feats, split_sha256=sample["tiles_sha256"],
                                                               view=sample)}}
        return {**section(per_view, allow_collapsed), "sample": sample}
    return check


@register_task
class SegmentationTask(Task):
    name = "segmentation"
    help = "UperNet semantic segmentation via mmsegmentation (Potsdam, Vaihingen, LoveDA)"
    default_protocol = "upernet-v1"
    protocol_task = "segmentation"
    settings = SegmentationSettings
    dataset_kinds = ("segmentation",)
    headline = Headline("mIoU", "mIoU (%)", table="segmentation", title="Segmentation: UperNet mIoU (%)",
                        reference_key="segmentation", reference_protocol="upernet-v1",
                        paper_protocol=r"upernet-v\d+|upernet_.+", by_crop=True,
                        recipe_switches=("cfg_options", "frozen", "layer_decay"), full_iters=80000)
    default_num_workers = 2
    distributed = True
    needs_loaded_model = False
    supports_seeds = True  # --seeds: one training per seed, one after another in this process
    supports_corruptions = True  # --corruptions: the trained segmentor on the val tiles under each (type, severity)
    geometric_corruptions = False  # rotate / scale / translate would need the label map warped too: refused

    def add_arguments(self, g: argparse._ArgumentGroup) -> None:
        g.add_argument("--crop", type=int, choices=[224, 512], default=512, help="training crop (default 512)")
        g.add_argument("--iters", type=positive_int, default=None,
                       help="iterations (default: the protocol's 80000; the warm-up is scaled proportionally; recorded)")
        g.add_argument("--work-dir", default=None,
                       help="mmengine work dir (default work_dirs/seg/<model>_<dataset>_<crop>)")
        g.add_argument("--seg-format", choices=["potsdam", "vaihingen", "loveda"], default=None,
                       help="which dataset a --dataset DIR holds (default: from the folder name)")
        g.add_argument("--frozen", action="store_true", help="freeze the backbone (protocol override; recorded)")
        g.add_argument("--layer-decay", type=positive_float, default=None,
                       help="layer-wise lr decay rate, e.g. 0.65 (protocol override; recorded)")
        g.add_argument("--seg-batch", type=positive_int, default=None,
                       help="total images per iteration over all processes (protocol override; default 8)")
        g.add_argument("--seg-layers", type=_layers, default=None,
                       help="4 tapped blocks, e.g. 3,5,7,11 (default: the protocol's for the backbone's depth)")
        g.add_argument("--seg-cfg-options", nargs="+", default=None, metavar="KEY=VALUE",
                       help="mmengine config overrides applied last (like mmseg's --cfg-options; recorded)")
        g.add_argument("--resume", action="store_true", help="resume from the latest checkpoint in the work dir")
        g.add_argument("--lr", type=positive_float, default=None, help="learning rate (protocol override)")
        add_seed_arguments(g)
        add_statistics_arguments(g)
        add_corruption_arguments(g)

    def output_folder(self, options: RunOptions) -> Any:
        return options.extra.get("work_dir")  # the default work dir is locked by the runner itself

    def protocol_overrides(self, args: argparse.Namespace) -> dict[str, Any]:
        out: dict[str, Any] = {"iters": args.iters, "layer_decay": args.layer_decay, "total_batch": args.seg_batch,
                               "lr": args.lr}
        if args.frozen:
            out["frozen"] = True
        return {k: v for k, v in out.items() if v is not None}

    def run_options(self, args: argparse.Namespace) -> dict[str, Any]:
        return {"crop": args.crop, "work_dir": args.work_dir, "seg_layers": args.seg_layers,
                "cfg_options": parse_cfg_options(args.seg_cfg_options), **statistics_run_options(args),
                **corruption_run_options(args)}

    def seed_options(self, options: RunOptions, seed: int) -> RunOptions:
        """One seed of ``--seeds``: the training seed and the work dir's sub-folder ``seed<S>`` (the default work dir's
        when none is given), so the seeds' checkpoints never meet."""
        opts = super().seed_options(options, seed)
        opts.extra["seed_subdir"] = f"seed{int(seed)}"
        return opts

    def run(self, model: Any, dataset: Any, protocol: Any, options: RunOptions) -> Any:

        import torch

        from satbench.eval.corruption_eval import check_options as corruption_plan

        plan = corruption_plan(self, options.extra)  # refused before any training
        settings = protocol.settings(SegmentationSettings)
        extra = options.extra
        device = str(options.device)
        if device == "cpu" and torch.cuda.is_available():
            raise SatbenchError("--device cpu with a visible GPU: mmengine picks the GPU; set CUDA_VISIBLE_DEVICES= "
                                "to train on CPU")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise SatbenchError(f"--device {device} requested but CUDA is not available here")
        cfg_options = dict(extra.get("cfg_options") or {})
        if not options.progress:
            cfg_options.setdefault("log_level", "WARNING")
        from satbench.seg.runner import default_work_dir, run_segmentation
        from satbench.stats.attach import StatsOptions

        work_dir = extra.get("work_dir")
        if extra.get("seed_subdir"):
            base = work_dir or default_work_dir(model.name, str(dataset.root), int(extra.get("crop", 512)),
                                                dataset.name)
            work_dir = str(Path(base) / extra["seed_subdir"])
        # The segmentor builds its backbone inside mmseg from the model name and weights spec (strict, as always).
        rec = run_segmentation(
            model.name, str(dataset.root), int(extra.get("crop", 512)),
            seg_format=dataset.name, weights=model.weights, seed=model.seed,
            train_seed=options.seed, statistics=StatsOptions.from_extra(extra),
            work_dir=work_dir, iters=settings.iters, frozen=settings.frozen,
            layer_decay=settings.layer_decay, out_indices=extra.get("seg_layers"), total_batch=settings.total_batch,
            num_workers=options.num_workers, resume="auto" if options.resume else None,
            build_options=dict(model.options), trust_checkpoint=model.trust_checkpoint,
            bf16=options.bf16, cfg_options=cfg_options, write=False, protocol=protocol,
            dataset_describe=dataset.describe(), corruptions=plan,
            feature_check=segmentation_feature_check(model.name, dataset.name, options.allow_collapsed_features))
        from satbench.runtime.ranks import is_job_main

        return rec if is_job_main() else None

    def describe_result(self, record: Any) -> str:
        from tabulate import tabulate

        from satbench.eval.repeats import describe_aggregate, is_aggregate

        if is_aggregate(record):
            return describe_aggregate(record)
        m = record["metrics"]
        applied = record["extra"].get("applied", {})
        rows = [[record["model"], record["dataset"]["name"], record["summary"].get("crop"), applied.get("iters"),
                 ci_text(record, "mIoU", m.get("mIoU")), m.get("mFscore"), m.get("aAcc")]]
        out = tabulate(rows, headers=["model", "dataset", "crop", "iters", "mIoU % [95% CI]", "mFscore %", "aAcc %"],
                       disable_numparse=True)
        iou = m.get("per_class", {}).get("IoU", {})
        st = m.get("statistics") or {}
        boot = st.get("bootstrap")
        note = (f"\nmIoU interval: 95% percentile bootstrap over the {m.get('n_val')} val images of the summed "
                f"confusion, {boot['resamples']} resamples" if boot else (f"\n{st['error']}" if st.get("error") else ""))
        from satbench.eval.corruption_eval import describe_corruptions

        corr = describe_corruptions(record)
        return out + "\n" + tabulate([[k, v] for k, v in iou.items()], headers=["class", "IoU %"]) + note + \
            (f"\n{corr}" if corr else "") + f"\nwork dir: {record['extra']['work_dir']}"
