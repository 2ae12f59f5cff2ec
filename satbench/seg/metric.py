"""mmseg's ``IoUMetric`` that also returns the per-class values and keeps per-image confusion counts (for satbench's
result records).

mmseg prints the per-class IoU table but returns only the means; :class:`SatbenchIoUMetric` computes the
same numbers (same code path) and adds ``IoU.<class>``, ``Acc.<class>`` and ``Fscore.<class>`` (percent,
2 decimals, as mmseg rounds) to the returned dict.

It also keeps, for every val image, its confusion counts ``[C, C]`` (rows = true class, cols = predicted; pixels with
the ignore index left out, as mmseg does), from the same label and prediction maps mmseg's ``intersect_and_union``
reads: the summed matrices give exactly mmseg's areas, so mIoU (and its bootstrap over images,
:func:`satbench.stats.bootstrap.miou_interval`) can be recomputed later. They travel with mmseg's own per-image
results, so under distributed evaluation mmengine gathers them with the rest; rank 0 holds them after each validation
in :attr:`SatbenchIoUMetric.per_image` (image paths sorted, confusions in that order).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Optional, Sequence

import numpy as np

from satbench.runtime import mmcv_compat

mmcv_compat.install()

from mmseg.evaluation.metrics import IoUMetric  # noqa: E402
from mmseg.registry import METRICS  # noqa: E402


def image_confusion(pred: Any, label: Any, num_classes: int, ignore_index: int) -> np.ndarray:
    """Confusion counts ``[C, C]`` (int64, rows = true class) of one prediction map against its label map, over the
    pixels mmseg counts (label != ignore_index); labels or predictions outside ``0..C-1`` are left out."""
    import torch

    pred = torch.as_tensor(pred).reshape(-1).to(torch.int64)
    label = torch.as_tensor(label).reshape(-1).to(torch.int64)
    keep = (label != ignore_index) & (label >= 0) & (label < num_classes) & (pred >= 0) & (pred < num_classes)
    idx = label[keep] * num_classes + pred[keep]
    cm = torch.bincount(idx.cpu(), minlength=num_classes * num_classes)
    return cm.reshape(num_classes, num_classes).numpy().astype(np.int64)


@METRICS.register_module()
class SatbenchIoUMetric(IoUMetric):
    """``IoUMetric`` whose result dict also carries per-class metrics (``<Metric>.<class name>``) and that keeps the
    per-image confusion counts of the latest evaluation (:attr:`per_image`, on the process that computes metrics)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: (image paths sorted, confusion counts [n, C, C] in that order) of the latest evaluation, or None
        self.per_image: Optional[tuple[list[str], np.ndarray]] = None

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        n0 = len(self.results)
        super().process(data_batch, data_samples)
        if self.format_only:
            return
        num_classes = len(self.dataset_meta["classes"])
        added = self.results[n0:]
        if len(added) != len(data_samples):  # mmseg appends one tuple per sample; anything else is left alone
            return
        for i, (res, sample) in enumerate(zip(added, data_samples)):
            pred = sample["pred_sem_seg"]["data"].squeeze()
            label = sample["gt_sem_seg"]["data"].squeeze().to(pred)
            cm = image_confusion(pred, label, num_classes, self.ignore_index)
            self.results[n0 + i] = (*res, cm, str(sample.get("img_path", "")))

    def compute_metrics(self, results: list) -> dict[str, Any]:
        extended = bool(results) and all(len(r) == 6 for r in results)
        if extended:
            names = [r[5] for r in results]
            order = sorted(range(len(results)), key=lambda i: names[i])
            self.per_image = ([names[i] for i in order], np.stack([results[i][4] for i in order]))
            results = [tuple(r[:4]) for r in results]
        else:
            self.per_image = None
        metrics = super().compute_metrics(results)
        if self.format_only or not results:
            return metrics
        cols = tuple(zip(*results))
        per_class = self.total_area_to_metrics(sum(cols[0]), sum(cols[1]), sum(cols[2]), sum(cols[3]),
                                               self.metrics, self.nan_to_num, self.beta)
        per_class.pop("aAcc", None)
        classes = self.dataset_meta["classes"]
        out = OrderedDict(metrics)
        for metric_name, values in per_class.items():
            for cls_name, v in zip(classes, np.asarray(values, dtype=np.float64)):
                out[f"{metric_name}.{cls_name}"] = float(np.round(v * 100, 2))
        return out
