"""Paired comparison of two runs on the same images (``satbench compare A B``).

For each comparable pair of records (same task, dataset, protocol hash and train/val split hashes, identical val
labels), from their prediction sidecars:

* classification (kNN per scale at one k, linear / cached-linear / fine-tune ``top1``): top-1 of A and B, the
  difference A - B (points) with its 95% paired-bootstrap interval (both models resampled on the *same* images: the
  resamples are a function of the val split hash and the seed, :mod:`satbench.stats.bootstrap`), and McNemar's exact
  two-sided p-value (binomial on the discordant images). Multi-scale kNN adds an ``average`` row: the mean over scales
  of the difference, scales averaged inside each resample (no McNemar: it is not a single 0/1 outcome per image).
* segmentation (per-image confusion counts): mIoU of A and B and the paired-bootstrap interval of the difference.
* Holm's step-down correction over all McNemar tests of the comparison (datasets x scales), reported as ``p_holm``.

Records are given as paths, or as model names resolved in a results folder to their latest comparable runs (latest by
record date, among records that have a prediction sidecar).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from satbench.errors import ResultsError
from satbench.records.predictions import Predictions, load_record, predictions_for_record
from satbench.records.splits import reported_split, split_family
from satbench.stats.bootstrap import (DEFAULT_LEVEL, DEFAULT_RESAMPLES, DEFAULT_SEED, BootstrapSpec, accuracy_percent,
                        bootstrap_means, bootstrap_sums, interval, miou_percent)
from satbench.stats.significance import holm, mcnemar_exact

_KNN = re.compile(r"^knn_s(?P<scale>[0-9.eE+-]+)_k(?P<k>[0-9]+)$")


class ComparisonError(ResultsError):
    """Two runs that cannot be compared (different split, protocol, task...), or a missing / damaged sidecar."""


@dataclass
class Run:
    """A record with its verified prediction sidecar."""

    record: dict[str, Any]
    preds: Predictions

    @property
    def path(self) -> str:
        return str(self.record.get("_path", ""))

    @property
    def label(self) -> str:
        w = self.record.get("weights") or {}
        tag = f"random-seed{w.get('seed')}" if w.get("source") == "random" else (w.get("sha256") or "")[:12]
        group = (self.record.get("extra") or {}).get("seed_group")
        run = f", run seed {group.get('seed')}" if isinstance(group, dict) and "seed" in group else ""
        return f"{self.record.get('model')} [{tag or w.get('source', '?')}{run}]"


@dataclass
class Comparison:
    """Rows (one per dataset x evaluation) and what was compared."""

    rows: list[dict[str, Any]]
    pairs: list[tuple[Run, Run]]
    spec: dict[str, Any]
    holm_tests: int = 0
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"a": [_describe(a) for a, _ in self.pairs], "b": [_describe(b) for _, b in self.pairs],
                "bootstrap": self.spec, "mcnemar": "exact two-sided (binomial on discordant pairs)",
                "holm": {"tests": self.holm_tests, "family": "all McNemar tests in this comparison"},
                "rows": self.rows}


def _describe(r: Run) -> dict[str, Any]:
    rec = r.record
    return {"record": r.path, "id": rec.get("id"), "model": rec.get("model"), "weights": rec.get("weights"),
            "task": rec.get("task"), "dataset": (rec.get("dataset") or {}).get("name"),
            "protocol": (rec.get("protocol") or {}).get("name"), "protocol_hash": (rec.get("protocol") or {}).get("hash"),
            "date": (rec.get("provenance") or {}).get("date"), "predictions_sha256": r.preds.sha256}


# ---------------------------------------------------------------------------------------------------------------------
# Comparability
# ---------------------------------------------------------------------------------------------------------------------
def _split_hashes(rec: dict[str, Any]) -> dict[str, Any]:
    ds = rec.get("dataset") if isinstance(rec.get("dataset"), dict) else {}
    h = ds.get("split_hashes")
    return h if isinstance(h, dict) else {}


def _eval_hash(rec: dict[str, Any]) -> Any:
    """The sha256 of the split a record's numbers are on (``val``; ``test`` for TorchGeo's splits)."""
    return _split_hashes(rec).get(reported_split(rec))


def _train_subset(rec: dict[str, Any]) -> Optional[str]:
    """The sha256 of the train subset a run used (``dataset.train_subset.sha256``), None for the whole split."""
    ds = rec.get("dataset") if isinstance(rec.get("dataset"), dict) else {}
    sub = ds.get("train_subset")
    if not isinstance(sub, dict):
        return None
    h = sub.get("sha256")
    return h if isinstance(h, str) else repr(sub.get("subset_sha256"))


def subset_label(rec: dict[str, Any]) -> Optional[str]:
    """``train 10% draw 0`` / ``5 shots draw 1`` for a run on a train subset, else None."""
    ds = rec.get("dataset") if isinstance(rec.get("dataset"), dict) else {}
    sub = ds.get("train_subset")
    if not isinstance(sub, dict):
        return None
    kind = sub.get("kind")
    what = (f"train {100 * float(sub.get('fraction', 0)):g}%" if kind == "fraction" and
            isinstance(sub.get("fraction"), (int, float)) else f"{sub.get('shots')} shots")
    return f"{what} draw {sub.get('draw')}"


def comparable_key(rec: dict[str, Any]) -> tuple[Any, ...]:
    """(task, dataset name, split family, protocol hash, train split sha256, reported split sha256, train subset
    sha256): runs with equal keys are comparable."""
    h = _split_hashes(rec)
    return (rec.get("task"), (rec.get("dataset") or {}).get("name"), split_family(rec),
            (rec.get("protocol") or {}).get("hash"), h.get("train"), _eval_hash(rec), _train_subset(rec))


def _short(v: Any) -> str:
    return (v[:12] + "...") if isinstance(v, str) and len(v) > 12 else repr(v)


def check_comparable(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Raise a one-line :class:`ComparisonError` unless ``a`` and ``b`` ran the same task and protocol on the same split."""
    where = f"cannot compare {Path(a.get('_path', 'A')).name} and {Path(b.get('_path', 'B')).name}"
    if a.get("_path") and a.get("_path") == b.get("_path"):
        raise ComparisonError(f"{where}: it is the same record")
    fa, fb = split_family(a), split_family(b)
    if fa != fb:
        raise ComparisonError(f"{where}: split family differs ({fa} vs {fb}): the runs are not on the same images")
    ha, hb = _split_hashes(a), _split_hashes(b)
    report = reported_split(a)
    if not _eval_hash(a) or not _eval_hash(b):
        raise ComparisonError(f"{where}: a record has no {report} split hash (dataset.split_hashes.{report}), so it "
                              f"cannot be shown to be on the same images")
    checks = [("task", a.get("task"), b.get("task")),
              ("dataset", (a.get("dataset") or {}).get("name"), (b.get("dataset") or {}).get("name")),
              ("reported split", report, reported_split(b)),
              (f"{report} split hash", _eval_hash(a), _eval_hash(b)),
              ("train split hash", ha.get("train"), hb.get("train")),
              ("train subset", _train_subset(a) or "the whole train split", _train_subset(b) or "the whole train split"),
              ("protocol hash", (a.get("protocol") or {}).get("hash"), (b.get("protocol") or {}).get("hash"))]
    for what, x, y in checks:
        if x != y:
            extra = ""
            if what == "protocol hash":
                from satbench.records.diff import protocol_difference

                names = f"{(a.get('protocol') or {}).get('name')} vs {(b.get('protocol') or {}).get('name')}"
                extra = f": {protocol_difference(a, b) or 'protocols ' + names}"
            raise ComparisonError(f"{where}: {what} differs ({_short(x)} vs {_short(y)}){extra}")


def load_run(record: dict[str, Any] | str | os.PathLike) -> Run:
    """A record (path or dict with ``_path``) and its verified sidecar; errors are one line naming the record."""
    rec = load_record(record) if isinstance(record, (str, os.PathLike)) else record
    try:
        return Run(rec, predictions_for_record(rec))
    except ComparisonError:
        raise
    except ResultsError as exc:
        raise ComparisonError(str(exc)) from None


# ---------------------------------------------------------------------------------------------------------------------
# Resolution of A / B
# ---------------------------------------------------------------------------------------------------------------------
def _looks_like_path(arg: str) -> bool:
    return arg.endswith(".json") or os.sep in arg or (os.altsep is not None and os.altsep in arg) or Path(arg).is_file()


def _candidates(name: str, records: Sequence[dict[str, Any]], where: Path, task: Optional[str],
                dataset: Optional[str]) -> list[dict[str, Any]]:
    mine = [r for r in records if r.get("model") == name and (task is None or r.get("task") == task)
            and (dataset is None or (r.get("dataset") or {}).get("name") == dataset)]
    if not mine:
        models = sorted({str(r.get("model")) for r in records})
        raise ComparisonError(f"no records of model {name!r} in {where}"
                              + (f" (task {task})" if task else "") + (f" (dataset {dataset})" if dataset else "")
                              + (f"; models there: {', '.join(models[:8])}" if models else ""))
    with_preds = [r for r in mine if r.get("predictions")]
    if not with_preds:
        raise ComparisonError(f"none of the {len(mine)} record(s) of {name!r} in {where} has per-image predictions "
                              f"(a .preds.npz sidecar); re-run them with this satbench")
    return with_preds


def _latest(recs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return max(recs, key=lambda r: ((r.get("provenance") or {}).get("date", ""), r.get("_path", "")))


def resolve_pairs(a: str, b: str, *, results_dir: Optional[str | os.PathLike] = None, task: Optional[str] = None,
                  dataset: Optional[str] = None) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Record pairs to compare: two paths, a path and a model name, or two model names (every dataset / task / protocol
    both have, the latest run of each)."""
    pa, pb = _looks_like_path(a), _looks_like_path(b)
    if pa and pb:
        return [(load_record(a), load_record(b))]
    from satbench.records.results import default_results_dir, read_records

    folder = Path(results_dir) if results_dir is not None else default_results_dir()
    records = read_records(folder)
    if pa or pb:
        fixed = load_record(a if pa else b)
        name = b if pa else a
        key = comparable_key(fixed)
        match = [r for r in _candidates(name, records, folder, task, dataset) if comparable_key(r) == key]
        if not match:
            raise ComparisonError(f"no run of {name!r} in {folder} is comparable with {Path(fixed['_path']).name} "
                                  f"(same task, dataset, split family, protocol hash and split hashes, with predictions)")
        other = _latest(match)
        return [(fixed, other) if pa else (other, fixed)]
    if a == b:
        raise ComparisonError(f"A and B are the same model ({a}); pass two record paths to compare two runs of it")
    ca, cb = _candidates(a, records, folder, task, dataset), _candidates(b, records, folder, task, dataset)
    groups_a: dict[tuple, list] = {}
    groups_b: dict[tuple, list] = {}
    for r in ca:
        groups_a.setdefault(comparable_key(r), []).append(r)
    for r in cb:
        groups_b.setdefault(comparable_key(r), []).append(r)
    common = [k for k in groups_a if k in groups_b and k[5]]
    if not common:
        have = lambda g: ", ".join(sorted({f"{k[0]}/{k[1]}" for k in g})) or "-"  # noqa: E731
        raise ComparisonError(f"{a!r} and {b!r} have no comparable runs in {folder} (same task, dataset, split "
                              f"family, protocol hash and split hashes): {a} has {have(groups_a)}; {b} has "
                              f"{have(groups_b)}")
    common.sort(key=lambda k: (str(k[1]), str(k[0]), str(k[2]), str(k[3]), str(k[6])))
    return [(_latest(groups_a[k]), _latest(groups_b[k])) for k in common]


# ---------------------------------------------------------------------------------------------------------------------
# Rows
# ---------------------------------------------------------------------------------------------------------------------
def _knn_scales(preds: Predictions, k: int) -> list[tuple[float, str]]:
    out = []
    for key in preds.preds:
        m = _KNN.match(key)
        if m and int(m["k"]) == k:
            out.append((float(m["scale"]), key))
    return sorted(out, reverse=True)


def _knn_k(run: Run, k: Optional[int]) -> int:
    ks = sorted({int(m["k"]) for m in map(_KNN.match, run.preds.preds) if m})
    if k is None:
        kr = (run.record.get("metrics") or {}).get("k_report")
        k = int(kr) if isinstance(kr, int) and kr in ks else (ks[0] if ks else None)
    if k is None or k not in ks:
        raise ComparisonError(f"{Path(run.path).name}: no kNN predictions at k = {k} (has k {ks})")
    return k


def compare_pair(a: Run, b: Run, spec: BootstrapSpec, k: Optional[int] = None) -> list[dict[str, Any]]:
    """Rows for one comparable pair (see the module docstring); ``p_holm`` is filled in by :func:`compare`."""
    check_comparable(a.record, b.record)
    rec = a.record
    base = {"dataset": (rec.get("dataset") or {}).get("name"), "task": rec.get("task"),
            "protocol": (rec.get("protocol") or {}).get("name"), "train_subset": subset_label(rec)}
    if (a.preds.confusion is None) != (b.preds.confusion is None):
        raise ComparisonError(f"cannot compare {Path(a.path).name} and {Path(b.path).name}: one sidecar holds "
                              f"confusions, the other labels")
    if a.preds.confusion is not None:
        ca, cb = a.preds.confusion, b.preds.confusion
        if ca.shape != cb.shape:
            raise ComparisonError(f"cannot compare {Path(a.path).name} and {Path(b.path).name}: confusion shapes "
                                  f"{ca.shape} vs {cb.shape}")
        ma, mb = float(miou_percent(ca.sum(0))), float(miou_percent(cb.sum(0)))
        n, c, _ = ca.shape
        both = bootstrap_sums(np.concatenate([ca.reshape(n, c * c), cb.reshape(n, c * c)], axis=1), spec)
        diff = (miou_percent(both[:, :c * c].reshape(-1, c, c))  # A and B summed over the same resampled images
                - miou_percent(both[:, c * c:].reshape(-1, c, c)))
        return [{**base, "eval": "mIoU", "scale": None, "k": None, "metric": "mIoU", "n": int(ca.shape[0]),
                 "a": ma, "b": mb, "diff": ma - mb, "ci": interval(diff, spec.level), "a_only": None,
                 "b_only": None, "p_mcnemar": None, "p_holm": None}]
    if a.preds.y_true is None or b.preds.y_true is None or not np.array_equal(a.preds.y_true, b.preds.y_true):
        raise ComparisonError(f"cannot compare {Path(a.path).name} and {Path(b.path).name}: their val labels (y_true) "
                              f"differ although the split hashes match")
    rows = []
    if rec.get("task") == "knn" or any(_KNN.match(x) for x in a.preds.preds):
        kk = _knn_k(a, k)
        scales = _knn_scales(a.preds, kk)
        if [s for s, _ in _knn_scales(b.preds, kk)] != [s for s, _ in scales]:
            raise ComparisonError(f"cannot compare {Path(a.path).name} and {Path(b.path).name}: different kNN scales "
                                  f"in the sidecars")
        evals = [(f"s={s:g} k={kk}", key, s, kk) for s, key in scales]
    else:
        if "top1" not in a.preds.preds or "top1" not in b.preds.preds:
            raise ComparisonError(f"cannot compare {Path(a.path).name} and {Path(b.path).name}: no top1 predictions")
        evals = [("top-1", "top1", None, None)]
    cols_a, cols_b = [], []
    for label, key, scale, kk in evals:
        if key not in b.preds.preds:
            raise ComparisonError(f"cannot compare {Path(a.path).name} and {Path(b.path).name}: "
                                  f"{Path(b.path).name} has no predictions for {key}")
        cols_a.append(a.preds.correct(key))
        cols_b.append(b.preds.correct(key))
    A, B = np.stack(cols_a, 1), np.stack(cols_b, 1)
    # one bootstrap for every row of the pair: per-image differences (-1/0/1) resampled together, so the average
    # row averages the scales inside each resample
    samples = 100.0 * bootstrap_means(A - B, spec)  # [R, S]
    for j, (label, key, scale, kk) in enumerate(evals):
        t = mcnemar_exact(A[:, j], B[:, j])
        a_acc, b_acc = accuracy_percent(A[:, j]), accuracy_percent(B[:, j])
        rows.append({**base, "eval": label, "scale": scale, "k": kk, "metric": "top1", "n": int(A.shape[0]),
                     "a": a_acc, "b": b_acc, "diff": a_acc - b_acc, "ci": interval(samples[:, j], spec.level),
                     "a_only": t.a_only, "b_only": t.b_only, "p_mcnemar": t.p, "p_holm": None})
    if len(evals) > 1:
        a_avg = float(np.mean([accuracy_percent(A[:, j]) for j in range(A.shape[1])]))
        b_avg = float(np.mean([accuracy_percent(B[:, j]) for j in range(B.shape[1])]))
        rows.append({**base, "eval": f"average k={evals[0][3]}", "scale": "average", "k": evals[0][3],
                     "metric": "top1", "n": int(A.shape[0]), "a": a_avg, "b": b_avg, "diff": a_avg - b_avg,
                     "ci": interval(samples.mean(axis=1), spec.level), "a_only": None, "b_only": None,
                     "p_mcnemar": None, "p_holm": None})
    return rows


def compare(a: str, b: str, *, results_dir: Optional[str | os.PathLike] = None, task: Optional[str] = None,
            dataset: Optional[str] = None, k: Optional[int] = None, seed: int = DEFAULT_SEED,
            resamples: int = DEFAULT_RESAMPLES, level: float = DEFAULT_LEVEL) -> Comparison:
    """Resolve A and B, verify their sidecars, and compute every row with Holm across all McNemar tests."""
    pairs = [(load_run(x), load_run(y)) for x, y in resolve_pairs(a, b, results_dir=results_dir, task=task,
                                                                  dataset=dataset)]
    rows: list[dict[str, Any]] = []
    specs = []
    for ra, rb in pairs:
        check_comparable(ra.record, rb.record)
        from satbench.stats.budget import check_resamples

        n_val = (ra.record.get("metrics") or {}).get(f"n_{reported_split(ra.record)}")
        check_resamples(resamples, n_val=n_val if isinstance(n_val, int) and not isinstance(n_val, bool) else None)
        spec = BootstrapSpec(_eval_hash(ra.record), seed=seed, resamples=resamples, level=level)
        specs.append(spec.split_sha256)
        rows += compare_pair(ra, rb, spec, k)
    adjusted = holm([r["p_mcnemar"] for r in rows])
    for r, p in zip(rows, adjusted):
        r["p_holm"] = p
    info = BootstrapSpec(specs[0], seed=seed, resamples=resamples, level=level).as_record()
    info.pop("split_sha256")
    info["split_sha256"] = specs if len(specs) > 1 else specs[0]
    return Comparison(rows, pairs, info, holm_tests=sum(p is not None for p in adjusted))
