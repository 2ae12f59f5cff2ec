"""``--corruptions [TYPE ...] [--severities 1..5]``: evaluate a classification task on a corrupted test split.

Only the test (val) split is corrupted; the train features stay clean and come from the feature cache like in any
run. Each (type, severity) of a corruption protocol (``tasks/corruptions/reo-v2.yaml`` by default, :mod:`satbench.data.corruptions`)
is one more view of the val split per evaluation view: the decoded native-size image corrupted, then the protocol's
resize and crop, through :func:`satbench.eval.extract.extract_views`, so every corrupted view is cached under its own
key (the clean view's key plus the corruption's protocol hash, type, severity and code revision) and a re-run does no
forward pass. The statistics (:mod:`satbench.stats.corruption`) go into ``metrics["corruptions"]`` and
``summary["corruptions"]``; the per-image corrupted predictions into the record's sidecar. A run without
``--corruptions`` is untouched: same views, same cache keys, same protocol hash, same record.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from satbench.data.corruptions import DEFAULT_PROTOCOL
from satbench.errors import SatbenchError

#: The task options (``RunOptions.extra``) this module owns.
OPTION_NAMES = ("corruptions", "severities", "corruption_protocol")


def add_corruption_arguments(g: argparse._ArgumentGroup) -> None:
    """``--corruptions`` / ``--severities`` / ``--corruption-protocol``."""
    g.add_argument("--corruptions", nargs="*", default=None, metavar="TYPE",
                   help="also evaluate on the val split corrupted by these types (no TYPE, or 'all': the protocol's "
                        "12; segmentation: its 9 photometric); training stays clean; classification caches each "
                        "(type, severity) as one view (recorded)")
    g.add_argument("--severities", nargs="+", default=None, metavar="S",
                   help="severities of --corruptions: integers 1..5 or a range like 1..5 (default 1..5)")
    g.add_argument("--corruption-protocol", default=None, metavar="NAME",
                   help=f"corruption protocol in tasks/corruptions/ or a YAML path (default {DEFAULT_PROTOCOL})")


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The corruption options present on ``args`` (``RunOptions.extra``)."""
    out: dict[str, Any] = {}
    if getattr(args, "corruptions", None) is not None:
        out["corruptions"] = list(args.corruptions)
    for name in ("severities", "corruption_protocol"):
        v = getattr(args, name, None)
        if v is not None:
            out[name] = v
    return out


@dataclass(frozen=True)
class CorruptionPlan:
    """What ``--corruptions`` asks for: the protocol, its settings, the types and severities (protocol order)."""

    protocol: Any
    settings: Any
    kinds: tuple[str, ...]
    severities: tuple[int, ...]

    @property
    def conditions(self) -> list[tuple[str, int]]:
        return [(k, s) for k in self.kinds for s in self.severities]

    def as_record(self) -> dict[str, Any]:
        return {"protocol": self.protocol.as_record(), "types": list(self.kinds), "severities": list(self.severities),
                "applied_to": "the val (test) split only, on the decoded native-size image before the evaluation "
                              "protocol's resize and crop; the train split is clean"}


def check_options(task: Any, extra: Mapping[str, Any]) -> Optional[CorruptionPlan]:
    """The plan of ``extra``'s corruption options (None without ``corruptions``), refused in one line before any work:
    ``--severities`` / ``--corruption-protocol`` without ``--corruptions``, a task that does not take them, train
    subsets or seeds in the same run, unknown types, severities or protocols, and geometric types for a task without
    ``geometric_corruptions`` (segmentation)."""
    asked = {k: extra.get(k) for k in OPTION_NAMES if extra.get(k) is not None}
    if not asked:
        return None
    if "corruptions" not in asked:
        flags = ", ".join("--" + k.replace("_", "-") for k in asked)
        raise SatbenchError(f"{flags} need{'s' if len(asked) == 1 else ''} --corruptions")
    if not getattr(task, "supports_corruptions", False):
        raise SatbenchError(f"--corruptions applies to tasks knn, cached-linear, linear --evaluate and segmentation, "
                            f"not {task.name}")
    if extra.get("train_fraction") is not None or extra.get("shots") is not None:
        raise SatbenchError("--corruptions and --train-fraction/--shots cannot be combined in one run; run them "
                            "separately")
    if extra.get("seeds") is not None:
        raise SatbenchError("--corruptions and --seeds cannot be combined in one run; run them separately")
    from satbench.data.corruptions import GEOMETRIC, SEVERITIES, load_corruption_protocol, parse_severities
    from satbench.data.corruptions import parse_types, refuse_geometric

    kinds = parse_types(extra.get("corruptions"))
    if not getattr(task, "geometric_corruptions", True):
        if list(extra.get("corruptions") or []) not in ([], ["all"]):
            refuse_geometric(kinds, task.name)
        kinds = [k for k in kinds if k not in GEOMETRIC]  # no TYPE / all: the photometric ones (recorded)
    sev = parse_severities(extra["severities"]) if extra.get("severities") is not None else list(SEVERITIES)
    proto, settings = load_corruption_protocol(str(extra.get("corruption_protocol") or DEFAULT_PROTOCOL))
    return CorruptionPlan(proto, settings, tuple(kinds), tuple(sev))


def corrupted_view(view: Any, plan: CorruptionPlan, kind: str, severity: int, split_sha256: str) -> Any:
    """``view`` of the image corrupted by (``kind``, ``severity``): its own key and cache spec."""
    from satbench.data.corruptions import ImageCorruption
    from satbench.eval.extract import View

    c = ImageCorruption(kind, severity, plan.settings, split_sha256, plan.protocol.name, plan.protocol.hash)
    return View(key=f"{view.key}+{kind}{severity}", transform=view.transform,
                spec={**view.spec, "corruption": c.spec()}, input_res=view.input_res, corruption=c)


@dataclass
class CorruptedFeatures:
    """Val features of every (type, severity) per clean view key, and the extraction's account."""

    feats: dict[tuple[str, int], dict[str, np.ndarray]]
    stats: dict[str, Any]
    seconds: float
    cache: dict[str, Any] = field(default_factory=dict)


def extract_corrupted(extractor: Any, samples: Sequence[Any], views: Sequence[Any], plan: CorruptionPlan, *,
                      split_sha256: str, cache: Any, batch_size: int, num_workers: int, progress: bool,
                      dist: Any = None, desc: str = "corrupted") -> CorruptedFeatures:
    """Features of ``samples`` (the val split, in split order) under every (type, severity) of ``plan`` and every
    one of ``views``: one :func:`~satbench.eval.extract.extract_views` call per (type, severity), so each image is
    corrupted once per condition for all views and a batch holds one condition's tensors. Under torchrun every rank
    calls this (sharded extraction); only rank 0's arrays are filled."""
    from satbench.eval.extract import ExtractStats, extract_views

    stats = ExtractStats()
    t0 = time.perf_counter()
    hits0, misses0 = (cache.hits, cache.misses) if cache is not None else (0, 0)
    out: dict[tuple[str, int], dict[str, np.ndarray]] = {}
    for kind, sev in plan.conditions:
        cviews = [corrupted_view(v, plan, kind, sev, split_sha256) for v in views]
        got = extract_views(extractor, samples, cviews, split_sha256=split_sha256, cache=cache,
                            batch_size=batch_size, num_workers=num_workers, progress=progress,
                            desc=f"{desc} {kind}/{sev}", stats=stats, dist=dist)
        out[(kind, sev)] = {v.key: got[cv.key] for v, cv in zip(views, cviews) if cv.key in got}
    acc = {"enabled": cache is not None and cache.enabled,
           "hits": (cache.hits - hits0) if cache is not None else 0,
           "misses": (cache.misses - misses0) if cache is not None else 0}
    d = stats.as_dict()
    d["views"] = len(plan.conditions) * len(views)
    return CorruptedFeatures(out, d, time.perf_counter() - t0, acc)


def attach_corruptions(record: Any, plan: CorruptionPlan, y_true: np.ndarray, clean_pred: Sequence[np.ndarray],
                       corrupted_pred: Mapping[tuple[str, int], Sequence[np.ndarray]], *, split_sha256: str,
                       stats_opts: Any, scales: Optional[Sequence[float]] = None,
                       pred_keys: Optional[Sequence[str]] = None, extraction: Optional[CorruptedFeatures] = None,
                       metric: str = "top1") -> None:
    """Add the corruption block to ``record``: ``metrics["corruptions"]`` (every condition, McNemar + Holm,
    intervals), ``summary["corruptions"]`` (the leaderboard's figures), the extraction's account under
    ``extra["corruptions"]``, and the corrupted top-1 predictions in the sidecar (``pred__c.<type>.<severity>.<key>``
    for each of ``pred_keys``, one per column of ``clean_pred``) when the record has one.

    ``clean_pred`` / ``corrupted_pred[(type, severity)]``: top-1 predictions per column (a probe: one; kNN: one per
    scale at the reported k), val split order."""
    from satbench.records.predictions import pred_name
    from satbench.stats.bootstrap import BootstrapSpec
    from satbench.stats.corruption import corruption_statistics, corruption_summary

    yt = np.asarray(y_true, dtype=np.int64)
    clean = np.stack([(np.asarray(p) == yt) for p in clean_pred], axis=1)
    corr = {key: np.stack([(np.asarray(p) == yt) for p in preds], axis=1) for key, preds in corrupted_pred.items()}
    spec = BootstrapSpec(split_sha256, seed=stats_opts.seed, resamples=stats_opts.resamples)
    t0 = time.perf_counter()
    block = corruption_statistics(clean, corr, spec, scales)
    block.update(plan.as_record())
    block["metric"] = metric
    block["bootstrap"] = spec.as_record()
    record["metrics"]["corruptions"] = block
    record["summary"]["corruptions"] = corruption_summary(block, block["protocol"])
    if extraction is not None:
        record["extra"]["corruptions"] = {"extraction": extraction.stats, "cache": extraction.cache,
                                          "seconds": round(extraction.seconds, 3)}
    record["timings"]["corruptions_extract_s"] = round(extraction.seconds, 3) if extraction is not None else 0.0
    record["timings"]["corruptions_statistics_s"] = round(time.perf_counter() - t0, 3)
    sidecar = record.get("_predictions")
    if sidecar and pred_keys is not None:
        for (kind, sev), preds in corrupted_pred.items():
            for key, p in zip(pred_keys, preds):
                sidecar["arrays"][pred_name(f"c.{kind}.{sev}.{key}")] = np.asarray(p, dtype=np.int64)


def describe_corruptions(record: Mapping[str, Any]) -> Optional[str]:
    """The corruption table of a record for the terminal (None when it has none)."""
    block = (record.get("metrics") or {}).get("corruptions")
    if not isinstance(block, dict):
        return None
    if "error" in block:
        return str(block["error"])
    if block.get("metric") == "mIoU":
        return _describe_miou(block)
    from tabulate import tabulate

    from satbench.stats.formatting import value_ci

    rows = []
    for r in block["conditions"]:
        tests = [v["mcnemar"] for v in r["per_scale"].values()]
        p = min(t["p_holm"] for t in tests)
        rows.append([r["type"], r["severity"], value_ci(r["top1"], r["ci"]), value_ci(r["drop"], r["drop_ci"]),
                     value_ci(r["relative_drop"], r["relative_drop_ci"]), f"{p:.2g}"])
    proto = block["protocol"]
    head = (f"corruptions ({proto['name']} {proto['hash'][:12]}; {block['metric']}; val split only): clean "
            f"{value_ci(block['clean']['top1'], block['clean']['ci'])}, mCA {value_ci(block['mca'], block['mca_ci'])}, "
            f"relative drop {value_ci(block['relative_drop'], block['relative_drop_ci'])}%, worst type "
            f"{block['worst_type']['type']} {value_ci(block['worst_type']['top1'], block['worst_type']['ci'])}")
    table = tabulate(rows, headers=["type", "sev", "top-1 [95% CI]", "drop (points)", "relative drop (%)",
                                    "McNemar p (Holm, min over scales)"])
    return f"{head}\n{table}"


def _describe_miou(block: Mapping[str, Any]) -> str:
    """The corruption table of a segmentation record (mIoU, no McNemar)."""
    from tabulate import tabulate

    from satbench.stats.formatting import value_ci

    rows = [[r["type"], r["severity"], value_ci(r["mIoU"], r["ci"]), value_ci(r["drop"], r["drop_ci"]),
             value_ci(r["relative_drop"], r["relative_drop_ci"])] for r in block["conditions"]]
    proto = block["protocol"]
    head = (f"corruptions ({proto['name']} {proto['hash'][:12]}; mIoU; val split only): clean "
            f"{value_ci(block['clean']['mIoU'], block['clean']['ci'])}, mean corrupted mIoU "
            f"{value_ci(block['mca'], block['mca_ci'])}, relative drop "
            f"{value_ci(block['relative_drop'], block['relative_drop_ci'])}%, worst type "
            f"{block['worst_type']['type']} {value_ci(block['worst_type']['mIoU'], block['worst_type']['ci'])}")
    table = tabulate(rows, headers=["type", "sev", "mIoU [95% CI]", "drop (points)", "relative drop (%)"],
                     disable_numparse=True)
    return f"{head}\n{table}\n(no McNemar test: mIoU is not a mean of per-image 0/1 outcomes; the drop intervals " \
           "are paired)"
