"""mmseg's ``IoUMetric`` that also returns the per-class values (for satbench's result records).

mmseg prints the per-class IoU table but returns only the means; :class:`SatbenchIoUMetric` computes the
same numbers (same code path) and adds ``IoU.<class>``, ``Acc.<class>`` and ``Fscore.<class>`` (percent,
2 decimals, as mmseg rounds) to the returned dict.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from . import mmcv_compat

mmcv_compat.install()

from mmseg.evaluation.metrics import IoUMetric  # noqa: E402
from mmseg.registry import METRICS  # noqa: E402


@METRICS.register_module()
class SatbenchIoUMetric(IoUMetric):
    """``IoUMetric`` whose result dict also carries per-class metrics (``<Metric>.<class name>``)."""

    def compute_metrics(self, results: list) -> dict[str, Any]:
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
