"""Corruption robustness of a classification run: clean against corrupted accuracy on the same test images.

Input: per-image 0/1 correctness of the clean run ``[n, S]`` and of every corruption condition (type, severity)
``[n, S]`` on the same images in the same order (``S`` = 1 for a probe; the scales of a multi-scale kNN, whose
accuracy is the mean over its scales, as its headline ``top1_avg``). Output (percent throughout):

* per condition: top-1, its percentile-bootstrap interval, the drop ``clean - corrupted`` (points) and the relative
  drop ``100 (clean - corrupted) / clean`` (percent of clean), each with its interval, and per scale the exact
  McNemar test of clean against corrupted (binomial on the discordant images, :mod:`satbench.stats.significance`),
  Holm-corrected over every test of the run (conditions x scales);
* mCA: the mean corrupted accuracy over the conditions evaluated; its relative drop; the mean top-1 of each type over
  its severities; the worst type (lowest such mean).

Every interval comes from one bootstrap: the same resampled images (:mod:`satbench.stats.bootstrap`, resamples a
function of the test split's sha256 and the seed, the ones of the clean record's own intervals) for the clean and
every corrupted column, so drops and relative drops are paired, and each summary is computed inside each resample.

Segmentation (:func:`miou_corruption_statistics`): the same block from per-image confusion counts, mIoU for top-1
(each resample sums the resampled images' matrices, as the clean record's own mIoU interval does), without McNemar.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import numpy as np

from satbench.stats.bootstrap import BootstrapSpec, bootstrap_means, interval
from satbench.stats.significance import holm, mcnemar_exact


def condition_key(kind: str, severity: int) -> str:
    """``gaussian_noise/3``: a condition's name in records and tables."""
    return f"{kind}/{int(severity)}"


def _relative(clean: np.ndarray, corrupted: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(clean > 0, 100.0 * (clean - corrupted) / np.where(clean > 0, clean, 1.0), np.nan)


def _num(x: Any) -> Optional[float]:
    v = float(x)
    return v if np.isfinite(v) else None


def corruption_statistics(clean: np.ndarray, corrupted: Mapping[tuple[str, int], np.ndarray], spec: BootstrapSpec,
                          scales: Optional[Sequence[float]] = None) -> dict[str, Any]:
    """The corruption block of a record (see the module docstring). ``corrupted`` maps (type, severity) to
    correctness ``[n, S]`` (or ``[n]``) in the order the conditions should be listed; ``scales`` names the ``S``
    columns (None: one unnamed column)."""
    c0 = np.asarray(clean, dtype=np.float64)
    c0 = c0[:, None] if c0.ndim == 1 else c0
    n, s = c0.shape
    if not corrupted:
        raise ValueError("no corruption condition to summarise")
    conds = list(corrupted)
    cols = [c0]
    for key in conds:
        c = np.asarray(corrupted[key], dtype=np.float64)
        c = c[:, None] if c.ndim == 1 else c
        if c.shape != (n, s):
            raise ValueError(f"correctness of {condition_key(*key)} has shape {c.shape}, the clean run {(n, s)}")
        cols.append(c)
    if scales is not None and len(scales) != s:
        raise ValueError(f"{len(scales)} scale names for {s} columns")
    every = np.concatenate(cols, axis=1)                           # [n, S (1 + m)]
    point_cols = every.sum(axis=0) * 100.0 / n                     # per column, as the runners compute accuracy
    samples = 100.0 * bootstrap_means(every, spec)                 # [R, S (1 + m)], the same resamples for all
    m = len(conds)
    point = point_cols.reshape(1 + m, s).mean(axis=1)              # [1 + m]: mean over scales
    boot = samples.reshape(-1, 1 + m, s).mean(axis=2)              # [R, 1 + m]
    level = spec.level
    clean_p, clean_b = float(point[0]), boot[:, 0]

    tests: list[dict[str, Any]] = []
    rows = []
    for j, (kind, sev) in enumerate(conds, start=1):
        per_scale = {}
        for i in range(s):
            t = mcnemar_exact(c0[:, i], cols[j][:, i])
            test = {"clean_only": t.a_only, "corrupted_only": t.b_only, "p": t.p, "p_holm": None}
            tests.append(test)
            name = "all" if scales is None else str(float(scales[i]))
            per_scale[name] = {"top1": float(point_cols[j * s + i]),
                               "ci": interval(samples[:, j * s + i], level), "mcnemar": test}
        rows.append({"type": kind, "severity": int(sev), "top1": float(point[j]), "ci": interval(boot[:, j], level),
                     "drop": clean_p - float(point[j]), "drop_ci": interval(clean_b - boot[:, j], level),
                     "relative_drop": _num(_relative(np.array(clean_p), np.array(point[j]))),
                     "relative_drop_ci": interval(_relative(clean_b, boot[:, j]), level),
                     "per_scale": per_scale})
    for test, p in zip(tests, holm([t["p"] for t in tests])):
        test["p_holm"] = p

    return {
        "units": "percent",
        **_means(conds, point, boot, level, "top1"),
        "conditions": rows,
        "mcnemar": "exact two-sided (binomial on the discordant images), clean vs corrupted, per scale",
        "holm": {"tests": len(tests), "family": "every McNemar test of this record (conditions x scales)"},
        "n": int(n),
    }


def _means(conds: Sequence[tuple[str, int]], point: np.ndarray, boot: np.ndarray, level: float,
           key: str) -> dict[str, Any]:
    """The clean figure, mCA (mean over the conditions), its drops, the mean of each type and the worst type, from the
    point values ``[1 + m]`` (clean first) and their bootstrap samples ``[R, 1 + m]`` (the same resamples)."""
    clean_p, clean_b = float(point[0]), boot[:, 0]
    mca_p, mca_b = float(point[1:].mean()), boot[:, 1:].mean(axis=1)
    kinds = list(dict.fromkeys(k for k, _ in conds))
    per_type = {}
    for kind in kinds:
        js = [j for j, (k, _) in enumerate(conds, start=1) if k == kind]
        per_type[kind] = {key: float(point[js].mean()), "ci": interval(boot[:, js].mean(axis=1), level),
                          "severities": [int(conds[j - 1][1]) for j in js]}
    worst = min(kinds, key=lambda k: (per_type[k][key], kinds.index(k)))
    return {
        "clean": {key: clean_p, "ci": interval(clean_b, level)},
        "mca": mca_p, "mca_ci": interval(mca_b, level),
        "drop": clean_p - mca_p, "drop_ci": interval(clean_b - mca_b, level),
        "relative_drop": _num(_relative(np.array(clean_p), np.array(mca_p))),
        "relative_drop_ci": interval(_relative(clean_b, mca_b), level),
        "per_type": per_type,
        "worst_type": {"type": worst, **{k: per_type[worst][k] for k in (key, "ci")}},
    }


#: Why a segmentation corruption block has no McNemar test (in the block instead of a p-value).
MIOU_NO_MCNEMAR = ("not applicable: mIoU is a ratio of pixel counts summed over the images, not a mean of per-image "
                   "0/1 outcomes, so there are no discordant images to count; the paired bootstrap interval of each "
                   "drop (the same resampled images for clean and corrupted) is the comparison")


def miou_corruption_statistics(clean: np.ndarray, corrupted: Mapping[tuple[str, int], np.ndarray],
                               spec: BootstrapSpec) -> dict[str, Any]:
    """The corruption block of a segmentation record from per-image confusion counts ``[n, C, C]`` (rows = true) of
    the clean val split and of every (type, severity), the same images in the same order: per condition mIoU (of the
    summed matrix, as mmseg) with its bootstrap interval, the paired drop and relative drop; mCA (the mean corrupted
    mIoU), per type, worst type, as :func:`corruption_statistics` with ``mIoU`` for ``top1``. Every column is
    resampled with the same images (:func:`~satbench.stats.bootstrap.confusion_bootstrap` of ``spec``: the clean
    record's own mIoU interval); no McNemar test (:data:`MIOU_NO_MCNEMAR`)."""
    from satbench.stats.bootstrap import confusion_bootstrap, miou_percent

    c0 = np.asarray(clean)
    if c0.ndim != 3 or c0.shape[1] != c0.shape[2]:
        raise ValueError(f"clean per-image confusion must be [n, C, C], got shape {c0.shape}")
    if not corrupted:
        raise ValueError("no corruption condition to summarise")
    conds = list(corrupted)
    cms = [c0]
    for key in conds:
        c = np.asarray(corrupted[key])
        if c.shape != c0.shape:
            raise ValueError(f"confusion of {condition_key(*key)} has shape {c.shape}, the clean run {c0.shape}")
        cms.append(c)
    point = np.array([float(miou_percent(c.sum(axis=0))) for c in cms])
    boot = np.stack([miou_percent(confusion_bootstrap(c, spec)) for c in cms], axis=1)  # [R, 1 + m]
    level = spec.level
    clean_p, clean_b = float(point[0]), boot[:, 0]
    rows = []
    for j, (kind, sev) in enumerate(conds, start=1):
        rows.append({"type": kind, "severity": int(sev), "mIoU": float(point[j]), "ci": interval(boot[:, j], level),
                     "drop": clean_p - float(point[j]), "drop_ci": interval(clean_b - boot[:, j], level),
                     "relative_drop": _num(_relative(np.array(clean_p), np.array(point[j]))),
                     "relative_drop_ci": interval(_relative(clean_b, boot[:, j]), level),
                     "pixels": int(cms[j].sum())})
    return {
        "units": "percent",
        **_means(conds, point, boot, level, "mIoU"),
        "conditions": rows,
        "mcnemar": MIOU_NO_MCNEMAR,
        "n": int(c0.shape[0]),
    }


def corruption_summary(block: Mapping[str, Any], protocol: Mapping[str, Any]) -> dict[str, Any]:
    """``summary["corruptions"]``: what the leaderboard shows (clean, mCA, relative drop, worst type, intervals) and
    what makes two runs' figures comparable (the corruption protocol's name and hash, the types and severities).
    Segmentation blocks (:func:`miou_corruption_statistics`) give the same keys, their ``*_top1`` figures being
    mIoU, and add ``metric: "mIoU"``."""
    conds = block["conditions"]
    key = "mIoU" if "mIoU" in block["clean"] else "top1"
    out = {"protocol": protocol.get("name"), "protocol_hash": protocol.get("hash"),
           "types": list(dict.fromkeys(r["type"] for r in conds)),
           "severities": sorted({int(r["severity"]) for r in conds}),
           "clean_top1": block["clean"][key], "mca": block["mca"], "relative_drop": block["relative_drop"],
           "worst_type": block["worst_type"]["type"], "worst_type_top1": block["worst_type"][key],
           "ci": {"clean_top1": block["clean"]["ci"], "mca": block["mca_ci"],
                  "relative_drop": block["relative_drop_ci"], "worst_type_top1": block["worst_type"]["ci"]}}
    if key != "top1":  # the same keys for every task; ``metric`` names what the ``*_top1`` figures hold
        out["metric"] = key
    return out
