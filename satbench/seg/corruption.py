"""``--corruptions`` for segmentation: the trained segmentor on the val tiles corrupted per (type, severity).

After training (and mmengine's clean final validation), every condition of the plan is one more pass over the val
split through the run's own val dataloader config: the same dataset class, the same test pipeline (resize, label
loading, packing), the same sampler and collate, the same ``model.val_step`` (whole or slide inference as the config's
``test_cfg`` says) and a fresh :class:`~satbench.seg.metric.SatbenchIoUMetric`. The one difference is a step right
after ``LoadImageFromFile``: the decoded native-size tile is corrupted by :func:`satbench.data.corruptions.corrupt`
with the generator :func:`~satbench.data.corruptions.corruption_rng` (val split sha256, the tile's index in the val
split sorted by image path, type, severity, protocol seed). Without that step the path is the clean validation
itself (tested: the same per-image confusions as the runner's own). Only the image changes: the photometric types
only (geometric ones are refused before training, :func:`satbench.eval.corruption_eval.check_options`).

Under torchrun every rank runs each pass on its shard and mmengine's evaluator gathers them; rank 0 holds the
per-image confusions (:func:`evaluate_corruptions`) and adds the block (:func:`attach_corruptions`).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np

from satbench.data.corruptions import GEOMETRIC, corrupt, corruption_rng, refuse_geometric

#: The val pipeline step after which the corruption goes (the decoded native-size image).
LOAD_STEP = "LoadImageFromFile"


@dataclass(frozen=True)
class CorruptTile:
    """Pipeline step: corrupt ``results["img"]`` (mmcv's BGR uint8 HxWx3, decoded at native size) as the RGB image the
    corruption functions take; the tile's index is its position in ``index`` (image path -> index)."""

    kind: str
    severity: int
    settings: Any
    split_sha256: str
    index: Mapping[str, int]

    def __call__(self, results: dict) -> dict:
        img = np.asarray(results["img"])
        if img.ndim == 2:  # a grey tile: mmcv's 'color' decoding gives 3 channels; be safe anyway
            img = np.repeat(img[:, :, None], 3, axis=2)
        rng = corruption_rng(self.split_sha256, int(self.index[str(results["img_path"])]), self.kind, self.severity,
                             self.settings.seed)
        rgb = np.ascontiguousarray(img[:, :, ::-1], dtype=np.uint8)
        results["img"] = np.ascontiguousarray(corrupt(rgb, self.kind, self.severity, rng, self.settings)[:, :, ::-1])
        return results


def tile_index(dataset: Any) -> dict[str, int]:
    """Image path -> the tile's index in the val split sorted by image path (the order of ``split_sha256`` and of the
    per-image confusions)."""
    paths = sorted(str(dataset.get_data_info(i)["img_path"]) for i in range(len(dataset)))
    return {p: i for i, p in enumerate(paths)}


def _pipeline_with(pipeline: list, step: Any) -> list:
    out = list(pipeline)
    at = next((i for i, t in enumerate(out) if isinstance(t, Mapping) and t.get("type") == LOAD_STEP), None)
    if at is None:
        raise ValueError(f"the val pipeline has no {LOAD_STEP} step to corrupt after")
    out.insert(at + 1, step)
    return out


def evaluate_val(runner: Any, step: Optional[CorruptTile] = None) -> Optional[tuple[list[str], np.ndarray]]:
    """One pass of the trained model over the val split through the run's val dataloader config, with ``step`` (None:
    none, the clean validation) right after the image is decoded: (image paths sorted, per-image confusions
    ``[n, C, C]``) on the process that computes metrics, None on the others."""
    import torch
    from mmengine.runner.amp import autocast

    from satbench.seg.metric import SatbenchIoUMetric

    cfg = copy.deepcopy(runner.cfg.val_dataloader)
    cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    if step is not None:
        cfg["dataset"]["pipeline"] = _pipeline_with(cfg["dataset"]["pipeline"], step)
    loader = runner.build_dataloader(cfg)
    evaluator = runner.build_evaluator(copy.deepcopy(runner.cfg.val_evaluator))
    evaluator.dataset_meta = loader.dataset.metainfo
    fp16 = bool(getattr(runner.val_loop, "fp16", False))
    model = runner.model
    model.eval()
    with torch.no_grad():
        for batch in loader:
            with autocast(enabled=fp16):
                outputs = model.val_step(batch)
            evaluator.process(data_samples=outputs, data_batch=batch)
    evaluator.evaluate(len(loader.dataset))
    metric = next((m for m in evaluator.metrics if isinstance(m, SatbenchIoUMetric)), None)
    if metric is None:
        raise ValueError("the val evaluator has no SatbenchIoUMetric (no per-image confusions)")
    return metric.per_image


@dataclass
class CorruptedVal:
    """Per-image confusions of the val split under every (type, severity), rank 0 (None elsewhere), and the time."""

    confusions: dict[tuple[str, int], Optional[tuple[list[str], np.ndarray]]]
    seconds: float


def check_plan(plan: Any) -> None:
    """Refuse a geometric type (one line naming why): the label map would need the same warp."""
    refuse_geometric(plan.kinds, "segmentation")


def evaluate_corruptions(runner: Any, plan: Any, split_sha256: str, progress: bool = False) -> CorruptedVal:
    """Every condition of ``plan`` (a :class:`satbench.eval.corruption_eval.CorruptionPlan`) on the val split; every
    rank calls it."""
    from tqdm import tqdm

    check_plan(plan)
    index = tile_index(runner.val_dataloader.dataset)
    t0 = time.perf_counter()
    out = {}
    for kind, sev in tqdm(plan.conditions, desc="corrupted val", disable=not progress):
        out[(kind, sev)] = evaluate_val(runner, CorruptTile(kind, sev, plan.settings, split_sha256, index))
    return CorruptedVal(out, time.perf_counter() - t0)


def attach_corruptions(record: Any, plan: Any, clean: tuple[list[str], np.ndarray], corrupted: CorruptedVal, *,
                       split_sha256: str, stats_opts: Any) -> None:
    """``metrics["corruptions"]`` (:func:`satbench.stats.corruption.miou_corruption_statistics`, the bootstrap of the
    record's own mIoU interval), ``summary["corruptions"]`` (the classification records' keys, ``metric: mIoU``),
    ``extra["corruptions"]`` and the timing; an error line in the block instead when the passes do not line up."""
    from satbench.stats.bootstrap import BootstrapSpec
    from satbench.stats.corruption import corruption_summary, miou_corruption_statistics

    names, cm = clean
    bad = [f"{k}/{s}" for (k, s), got in corrupted.confusions.items() if got is None or got[0] != names]
    record["timings"]["corruptions_eval_s"] = round(corrupted.seconds, 3)
    if bad:
        record["metrics"]["corruptions"] = {"error": f"corruptions left out: the corrupted passes {', '.join(bad)} "
                                                     "did not cover the clean validation's val tiles"}
        return
    spec = BootstrapSpec(split_sha256, **stats_opts.kwargs())  # the clean mIoU interval's resamples
    t0 = time.perf_counter()
    block = miou_corruption_statistics(cm, {key: got[1] for key, got in corrupted.confusions.items()}, spec)
    block.update(plan.as_record())
    block["applied_to"] = ("the val split only, on the decoded native-size tile (after LoadImageFromFile, before the "
                           "val pipeline's resize; the label map untouched); training is clean")
    block["index"] = "the tile's position in the val split sorted by image path (the order of split_sha256)"
    block["inference"] = "the run's val dataloader, pipeline, model.val_step (test_cfg mode) and SatbenchIoUMetric"
    block["metric"] = "mIoU"
    block["not_covered"] = {"types": list(GEOMETRIC),
                            "why": "geometric types move pixels; the label map would need the same warp (not done)"}
    block["bootstrap"] = spec.as_record()
    record["metrics"]["corruptions"] = block
    record["summary"]["corruptions"] = corruption_summary(block, block["protocol"])
    record["extra"]["corruptions"] = {"conditions": len(corrupted.confusions),
                                      "seconds": round(corrupted.seconds, 3)}
    record["timings"]["corruptions_statistics_s"] = round(time.perf_counter() - t0, 3)

