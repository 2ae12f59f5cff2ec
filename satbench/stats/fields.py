"""Record helpers: from what a runner has (labels and per-image predictions, or per-image confusions) to the record's
statistics fields (CONTRACTS.md) and the prediction-sidecar arrays.

Each ``*_fields`` function returns a :class:`StatisticsFields`; a runner does::

    fields = knn_fields(y_true, preds, k_report=k_report, split_sha256=dataset.splits["val"].sha256)
    fields.apply(record)                     # summary["ci"], summary["robustness"], metrics["statistics"]
    path = write_record_with_predictions(record, fields.arrays, fields.num_classes, results_dir)

Point estimates are recomputed from the predictions with the runners' formula (``count * 100.0 / n``) and returned in
``fields.point``; :meth:`StatisticsFields.check_against` compares them with the record's own numbers, so a sidecar that
does not reproduce the record is caught when it is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from satbench.errors import ResultsError
from satbench.records.predictions import conf_name, knn_key, pred_name
from satbench.stats.bootstrap import (DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, BootstrapSpec, accuracy_percent,
                        bootstrap_means, confusion_bootstrap, correctness, interval, miou_percent)
from satbench.stats.robustness import NAMES as ROBUSTNESS_NAMES, robustness, summaries


@dataclass
class StatisticsFields:
    """What a runner adds to its record, plus the sidecar arrays."""

    summary_ci: dict[str, Any]
    statistics: dict[str, Any]
    arrays: dict[str, np.ndarray]
    num_classes: int
    robustness: Optional[dict[str, Any]] = None
    point: dict[str, Any] = field(default_factory=dict)
    #: ``summary["calibration"]`` and ``metrics["calibration"]`` (None: no confidences were given)
    calibration: Optional[tuple[dict[str, Any], dict[str, Any]]] = None

    def apply(self, record: dict[str, Any]) -> dict[str, Any]:
        """Set ``summary["ci"]``, ``summary["robustness"]`` (multi-scale kNN), ``metrics["statistics"]`` and the
        calibration fields."""
        record.setdefault("summary", {})["ci"] = self.summary_ci
        if self.robustness is not None:
            record["summary"]["robustness"] = self.robustness
        record.setdefault("metrics", {})["statistics"] = self.statistics
        if self.calibration is not None:
            record["summary"]["calibration"], record["metrics"]["calibration"] = self.calibration
        return record

    def check_against(self, summary: Mapping[str, Any], tol: float = 1e-9) -> None:
        """Raise :class:`ResultsError` if a point estimate differs from the record summary's value."""
        for name, value in self.point.items():
            if name not in summary:
                continue
            mine, theirs = value, summary[name]
            if isinstance(mine, dict):
                pairs = [(f"{name}[{k}]", v, theirs.get(k)) for k, v in mine.items()]
            else:
                pairs = [(name, mine, theirs)]
            for label, a, b in pairs:
                if b is None or a is None or abs(float(a) - float(b)) > tol:
                    raise ResultsError(f"per-image predictions give {label} = {a}, the record says {b}")


def _spec(split_sha256: str, seed: int, resamples: int, level: float) -> BootstrapSpec:
    return BootstrapSpec(split_sha256, seed=seed, resamples=resamples, level=level)


def _labels(y: Any, name: str) -> np.ndarray:
    a = np.asarray(y)
    if a.ndim != 1 or a.dtype.kind not in "iu":
        raise ValueError(f"{name} must be a 1-D integer vector, got {a.dtype}{list(a.shape)}")
    return a.astype(np.int64)


def knn_fields(y_true: Sequence[int] | np.ndarray, preds: Mapping[tuple[float, int], Any], *, k_report: int,
               split_sha256: str, num_classes: int, top5_correct: Optional[Mapping[tuple[float, int], Any]] = None,
               conf: Optional[Mapping[tuple[float, int], Any]] = None, seed: int = DEFAULT_SEED,
               resamples: int = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL) -> StatisticsFields:
    """Fields of a (multi-scale) kNN record from top-1 predictions ``preds[(scale, k)]`` (val split order).

    * ``summary["ci"]``: ``top1_avg`` (scales averaged inside each resample), ``top1_per_scale`` {scale: [lo, hi]} at
      ``k_report``, ``top5_avg`` when ``top5_correct`` (per-image 0/1 top-5 hits) is given, and the three robustness
      summaries (two or more scales).
    * ``metrics["statistics"]``: ``bootstrap`` (the resample definition) and ``ci`` for every ``knn_s<scale>_k<k>``
      and ``knn_avg_k<k>``.
    * arrays: ``y_true`` and ``pred__knn_s<scale>_k<k>`` for every (scale, k).
    * with ``conf`` (the top class's share of the vote per image, at ``(scale, k_report)``): the calibration fields
      (:func:`knn_calibration`) and arrays ``conf__knn_s<scale>_k<k_report>``.
    """
    yt = _labels(y_true, "y_true")
    scales = sorted({float(s) for s, _ in preds}, reverse=True)
    ks = sorted({int(k) for _, k in preds})
    p = {(float(s), int(k)): _labels(v, f"predictions {s}/{k}") for (s, k), v in preds.items()}
    missing = [(s, k) for s in scales for k in ks if (s, k) not in p]
    if missing:
        raise ValueError(f"kNN predictions lack (scale, k) = {missing[:3]}")
    if k_report not in ks:
        raise ValueError(f"k_report {k_report} is not among the predicted k {ks}")
    spec = _spec(split_sha256, seed, resamples, level)
    cols = [(s, k) for k in ks for s in scales]
    correct = np.stack([correctness(yt, p[c]) for c in cols], axis=1)  # [n, S*K]
    c5 = None
    if top5_correct is not None:
        c5 = np.stack([np.asarray(top5_correct[(s, k_report)], dtype=np.float64) for s in scales], axis=1)
    # one bootstrap for everything: every interval of the record uses the same resampled images
    both = 100.0 * bootstrap_means(correct if c5 is None else np.concatenate([correct, c5], axis=1), spec)
    samples = both[:, :len(cols)]                                        # [R, S*K]
    ci_all: dict[str, Any] = {}
    point_all: dict[str, float] = {}
    for j, (s, k) in enumerate(cols):
        ci_all[knn_key(s, k)] = interval(samples[:, j], level)
        point_all[knn_key(s, k)] = accuracy_percent(correct[:, j])
    for k in ks:
        js = [j for j, (_, kk) in enumerate(cols) if kk == k]
        ci_all[f"knn_avg_k{k}"] = interval(samples[:, js].mean(axis=1), level)
        point_all[f"knn_avg_k{k}"] = float(np.mean([point_all[knn_key(s, k)] for s in scales]))
    summary_ci: dict[str, Any] = {
        "top1_avg": ci_all[f"knn_avg_k{k_report}"],
        "top1_per_scale": {str(s): ci_all[knn_key(s, k_report)] for s in scales},
    }
    point: dict[str, Any] = {"top1_avg": point_all[f"knn_avg_k{k_report}"],
                             "top1_per_scale": {str(s): point_all[knn_key(s, k_report)] for s in scales}}
    if c5 is not None:
        summary_ci["top5_avg"] = interval(both[:, len(cols):].mean(axis=1), level)
        point["top5_avg"] = float(np.mean([accuracy_percent(c5[:, i]) for i in range(len(scales))]))
    rob = None
    if len(scales) >= 2:
        js = [cols.index((s, k_report)) for s in scales]
        rob, _ = robustness(scales, correct[:, js])       # point values on all images
        rob_samples = summaries(scales, samples[:, js])    # the same resamples as every other interval
        for name in ROBUSTNESS_NAMES:
            summary_ci[name] = interval(rob_samples[name], level)
            point[name] = rob[name]
        rob["k"] = int(k_report)
    arrays = {"y_true": yt, **{pred_name(knn_key(s, k)): p[(s, k)] for (s, k) in cols}}
    stats = {"bootstrap": spec.as_record(), "ci": ci_all, "units": "percent"}
    calib = None
    if conf is not None:
        js = [cols.index((s, k_report)) for s in scales]
        cs = np.stack([np.asarray(conf[(s, k_report)], dtype=np.float64) for s in scales], axis=1)
        calib = knn_calibration(scales, cs, correct[:, js], k_report, spec)
        arrays.update({conf_name(knn_key(s, k_report)): cs[:, j] for j, s in enumerate(scales)})
    return StatisticsFields(summary_ci, stats, arrays, int(num_classes), rob, point, calib)


#: Why a kNN record has no temperature-scaled errors (satbench.stats.temperature).
KNN_NO_TEMPERATURE = ("kNN votes are not logits; a temperature on the log-votes cannot move the queries whose "
                      "neighbours all share one class (confidence exactly 1 at every temperature), so temperature "
                      "scaling applies to the linear probes only")
KNN_CONFIDENCE = ("the top class's share of the exp(sim / T)-weighted vote of the k nearest train images, "
                  "votes[top] / sum(votes)")
PROBE_CONFIDENCE = "the softmax of the head's logits at the predicted class"


def _calibration_metrics(bins: Any, confidence: str) -> dict[str, Any]:
    return {"binning": bins.as_record(), "confidence": confidence, "units": "percent",
            "intervals": "percentile bootstrap over val images, the resamples of metrics.statistics.bootstrap"}


def knn_calibration(scales: Sequence[float], conf: np.ndarray, correct: np.ndarray, k: int,
                    spec: BootstrapSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``summary["calibration"]``, ``metrics["calibration"]``) of a kNN run from per-image confidences and 0/1
    correctness ``[n, S]`` at ``k`` (one column per scale): the mean over scales (averaged inside each resample) in the
    summary, each scale with its share of unanimous votes and reliability bins in the metrics."""
    from satbench.stats.calibration import binning, calibration_intervals, reliability
    from satbench.stats.temperature import not_applicable

    bins = binning()
    res = calibration_intervals(conf, correct, spec, bins)
    over = f"mean over {len(scales)} scales" if len(scales) > 1 else f"scale {scales[0]!r}"
    summary = {**res.block(None), "k": int(k), "over": over}
    per_scale = {str(s): {**res.block(j), "mean_confidence": 100.0 * float(conf[:, j].mean()),
                          "unanimous_fraction": float((conf[:, j] == 1.0).mean()),
                          "reliability": reliability(conf[:, j], correct[:, j], bins)} for j, s in enumerate(scales)}
    metrics = {**_calibration_metrics(bins, KNN_CONFIDENCE), "k": int(k), "per_scale": per_scale,
               "binning_choice": ("uniform15 as for the probes: the weighted votes make the confidence continuous, "
                                  "not a multiple of 1/k (torchgeo-bench's k + 1 bins are for uniform votes); "
                                  "unanimous neighbours (confidence exactly 1) are a bin of their own"),
               "temperature_scaling": not_applicable(KNN_NO_TEMPERATURE)}
    return summary, metrics


def classification_fields(y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, *,
                          split_sha256: str, num_classes: int, top5_correct: Optional[Any] = None,
                          conf: Optional[Any] = None, temperature: Optional[Any] = None,
                          seed: int = DEFAULT_SEED, resamples: int = DEFAULT_RESAMPLES,
                          level: float = DEFAULT_LEVEL) -> StatisticsFields:
    """Fields of a linear / cached-linear / fine-tune record from its reported (e.g. best-epoch) val predictions:
    ``summary["ci"]["top1"]`` (and ``top5`` when per-image top-5 hits are given), arrays ``y_true`` + ``pred__top1``.

    ``conf``: the softmax confidence of each prediction -> the calibration fields (:func:`probe_calibration`) and array
    ``conf__top1``; ``temperature``: ``(TemperatureFit, scaled confidences)`` or a reason string (not scaled) ->
    ``metrics.calibration.temperature_scaling`` (and array ``conf__top1.ts``)."""
    yt, yp = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    spec = _spec(split_sha256, seed, resamples, level)
    c1 = correctness(yt, yp)
    cols = [c1]
    if top5_correct is not None:
        cols.append(np.asarray(top5_correct, dtype=np.float64))
    samples = 100.0 * bootstrap_means(np.stack(cols, axis=1), spec)
    ci = {"top1": interval(samples[:, 0], level)}
    point = {"top1": accuracy_percent(c1)}
    if top5_correct is not None:
        ci["top5"] = interval(samples[:, 1], level)
        point["top5"] = accuracy_percent(cols[1])
    stats = {"bootstrap": spec.as_record(), "ci": dict(ci), "units": "percent"}
    arrays = {"y_true": yt, pred_name("top1"): yp}
    calib = None
    if conf is not None:
        c = np.asarray(conf, dtype=np.float64)
        calib = probe_calibration(c, c1, spec, temperature)
        arrays[conf_name("top1")] = c
        if isinstance(temperature, tuple):
            arrays[conf_name("top1.ts")] = np.asarray(temperature[1], dtype=np.float64)
    return StatisticsFields(ci, stats, arrays, int(num_classes), None, point, calib)


def probe_calibration(conf: np.ndarray, correct: np.ndarray, spec: BootstrapSpec,
                      temperature: Optional[Any] = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(``summary["calibration"]``, ``metrics["calibration"]``) of a probe from softmax confidences and 0/1
    correctness ``[n]``; ``temperature`` as :func:`classification_fields` takes it (the summary then also holds
    ``temperature`` and the ``scaled`` errors)."""
    from satbench.stats.calibration import binning, calibration_intervals, reliability
    from satbench.stats.temperature import applied, not_applicable

    bins = binning()
    summary = calibration_intervals(conf, correct, spec, bins).block(0)
    metrics = {**_calibration_metrics(bins, PROBE_CONFIDENCE), "mean_confidence": 100.0 * float(conf.mean()),
               "reliability": reliability(conf, correct, bins)}
    if isinstance(temperature, tuple):
        fit, scaled = temperature
        s = calibration_intervals(scaled, correct, spec, bins).block(0)
        summary["temperature"] = fit.temperature
        summary["scaled"] = s
        metrics["temperature_scaling"] = applied(fit, {**s, "mean_confidence": 100.0 * float(np.mean(scaled)),
                                                       "reliability": reliability(scaled, correct, bins)})
    else:
        metrics["temperature_scaling"] = not_applicable(temperature or "not asked for (--temperature-scaling)")
    return summary, metrics


def segmentation_fields(confusion: Any, *, split_sha256: str, seed: int = DEFAULT_SEED,
                        resamples: int = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL) -> StatisticsFields:
    """Fields of a segmentation record from per-image confusion counts ``[n_images, C, C]`` (rows = true class):
    ``summary["ci"]["mIoU"]`` by resampling images and recomputing mIoU of the summed matrix; array ``confusion``."""
    cm = np.asarray(confusion)
    if cm.ndim != 3 or cm.shape[1] != cm.shape[2] or cm.dtype.kind not in "iu":
        raise ValueError(f"per-image confusion must be integer [n, C, C], got {cm.dtype}{list(cm.shape)}")
    spec = _spec(split_sha256, seed, resamples, level)
    ci = {"mIoU": interval(miou_percent(confusion_bootstrap(cm, spec)), level)}
    point = {"mIoU": float(miou_percent(cm.sum(axis=0)))}
    stats = {"bootstrap": spec.as_record(), "ci": dict(ci), "units": "percent"}
    return StatisticsFields(ci, stats, {"confusion": cm.astype(np.int64)}, int(cm.shape[1]), None, point)


def seeds_field(values: Sequence[float], seeds: Optional[Sequence[int]] = None) -> dict[str, Any]:
    """``record["summary"]["seeds"]`` of a seed-aggregate record (see :mod:`satbench.stats.seeds`)."""
    from satbench.stats.seeds import aggregate

    return aggregate(values, seeds)


def draws_field(values: Sequence[float], subsets: Sequence[Any]) -> dict[str, Any]:
    """Aggregate of one label fraction / shot count over its draws (suggested place: ``summary["draws"]``): the
    :func:`satbench.stats.seeds.aggregate` of the per-draw values plus each draw's subset hash and size."""
    from satbench.stats.seeds import aggregate

    if len(values) != len(subsets):
        raise ValueError(f"{len(values)} values for {len(subsets)} subsets")
    kinds = {(s.kind, s.value) for s in subsets}
    if len(kinds) != 1:
        raise ValueError(f"draws of different subsets cannot be aggregated: {sorted(kinds)}")
    (kind, value), = kinds
    out = aggregate(values)
    out.update({"kind": kind, kind: value, "draws": [s.draw for s in subsets],
                "subset_sha256": [s.sha256 for s in subsets], "subset_n": [int(len(s.indices)) for s in subsets]})
    return out
