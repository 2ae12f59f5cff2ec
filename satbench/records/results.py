"""Result records: one JSON file per run with full provenance, written atomically, never overwritten."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from satbench.errors import ResultsError
from satbench.io.bounded import UntrustedFileError, parse_json_bounded, read_bytes_bounded
from satbench.io.atomic import atomic_write_json
from satbench.records.provenance import provenance
from satbench.records.names import (
    MAX_RECORD_BYTES, MAX_RECORD_DEPTH, REQUIRED, SCHEMA, candidate_stems, default_results_dir, record_destination,
    record_stem
)
from satbench.records.checks import date_key, value_problem


def check_results_folder(folder: str | os.PathLike | None = None) -> Path:
    """Fail before any work when records could not be written to ``folder`` (default: :func:`default_results_dir`):
    the folder is created if needed and a hidden probe file is written and removed. Returns the folder."""
    import tempfile

    folder = Path(folder) if folder else default_results_dir()
    if folder.exists() and not folder.is_dir():
        raise ResultsError(f"results folder {folder} is not a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".satbench-write-check-", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ResultsError(f"cannot write in {folder}: {exc.strerror or exc} (checked before the run, so no "
                           f"work is lost; pass --results-dir or set $SATBENCH_RESULTS)") from None
    return folder


class Record(dict):
    """One result record: the JSON mapping written to ``results/runs/`` (schema :data:`SCHEMA`), with accessors.

    Keys starting with ``_`` (``_path``: where it was written or read from) are never written.
    """

    @property
    def task(self) -> str:
        return self["task"]

    @property
    def model(self) -> str:
        return self["model"]

    @property
    def dataset_name(self) -> str:
        return self["dataset"].get("name", "")

    @property
    def summary(self) -> dict[str, Any]:
        return self.get("summary", {})

    @property
    def path(self) -> Path | None:
        return Path(self["_path"]) if self.get("_path") else None

    def attach_predictions(self, arrays: dict[str, Any], num_classes: int) -> None:
        """Per-image predictions to write as the record's sidecar (``<stem>.preds.npz``, :mod:`satbench.records.predictions`)
        when the record is written; ``record["predictions"]`` then names it with its sha256."""
        self["_predictions"] = {"arrays": arrays, "num_classes": int(num_classes)}

    def write(self, results_dir: str | os.PathLike | None = None) -> Path:
        """Write atomically as a new file in ``results_dir`` (default: :func:`default_results_dir`), its prediction
        sidecar first when one is attached (a reader never sees a record whose sidecar is missing)."""
        path = write_record(self, results_dir)
        self["_path"] = str(path)
        return path


def make_record(*, task: str, model: str, weights: dict[str, Any], protocol: dict[str, Any],
                dataset: dict[str, Any], metrics: dict[str, Any], summary: dict[str, Any] | None = None,
                extractor: dict[str, Any] | None = None, timings: dict[str, Any] | None = None,
                extra: dict[str, Any] | None = None, device: Any = None) -> Record:
    """Assemble a record. ``summary`` holds the headline numbers the leaderboard shows. ``extractor`` gets ``input``,
    the input value range the model saw (:func:`satbench.records.inputs.input_range`), when it names a normalisation."""
    from satbench.records.inputs import input_range

    extractor = dict(extractor or {})
    if "input" not in extractor:
        stated = input_range(extractor)
        if stated is not None:
            extractor["input"] = stated
    return Record({
        "schema": SCHEMA,
        "id": uuid.uuid4().hex[:12],
        "task": task,
        "model": model,
        "weights": weights,
        "protocol": protocol,
        "dataset": dataset,
        "metrics": metrics,
        "summary": summary or {},
        "extractor": extractor,
        "timings": timings or {},
        "extra": extra or {},
        "provenance": provenance(device),
    })


def write_record(record: dict[str, Any], results_dir: str | os.PathLike | None = None) -> Path:
    """Write ``record`` atomically as a new file in ``results_dir``; returns its path."""
    folder, base = record_destination(record, results_dir)
    public = {k: v for k, v in record.items() if not str(k).startswith("_")}
    preds = record.get("_predictions")
    if preds:
        from satbench.records.predictions import write_record_with_predictions

        path = write_record_with_predictions(public, preds["arrays"], preds["num_classes"], folder)
        record["predictions"] = public["predictions"]
        return path
    for stem in candidate_stems(base):
        try:
            return atomic_write_json(folder / f"{stem}.json", public, exclusive=True)
        except FileExistsError:
            continue
    raise ResultsError(f"could not find a free record name in {folder}")


#: Summary entries that must be numbers (or null) when present; the leaderboard shows them.
SUMMARY_NUMBERS = ("top1", "top5", "top1_avg", "mIoU", "worst_scale_top1", "drop_to_smallest_scale", "auc_log2_scale")


def _type_name(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def _show(v: Any) -> str:
    text = json.dumps(v)[:40] if not isinstance(v, (dict, list)) else ""
    return f"{_type_name(v)}" + (f" {text}" if text else "")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_interval(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and all(_is_number(x) for x in v)


def record_problem(rec: Any) -> Optional[str]:
    """Why ``rec`` (parsed JSON) is not a usable satbench record, or None when it is.

    Checks what the leaderboard and the other readers use: the schema, the required fields and their types (task,
    model and id strings; weights, protocol, dataset, metrics, provenance objects; summary an object whose headline
    numbers are numbers), ``provenance.date`` a string, and the nested fields tables read. Non-finite numbers are
    refused when parsing (:func:`satbench.io.bounded.parse_json_bounded`).
    """
    if not isinstance(rec, dict):
        return f"not a satbench record (the JSON is {_type_name(rec)}, not an object)"
    schema = rec.get("schema")
    if schema != SCHEMA:
        if isinstance(schema, str) and schema.startswith("satbench.record/"):
            return f"record schema {schema!r} is not supported (this satbench reads {SCHEMA})"
        return f"not a satbench record (no \"schema\": \"{SCHEMA}\")"
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        return f"record lacks required field(s) {', '.join(missing)}"
    for key in ("id", "task", "model"):
        if not isinstance(rec[key], str) or not rec[key]:
            return f"{key} must be a non-empty string, got {_show(rec[key])}"
    for key in ("weights", "protocol", "dataset", "metrics", "provenance", "summary", "extractor", "timings", "extra",
                "predictions", "features"):
        if key in rec and not isinstance(rec[key], dict):
            return f"{key} must be an object, got {_show(rec[key])}"
    checks: list[tuple[str, Any, tuple[type, ...]]] = [
        ("provenance.date", rec["provenance"].get("date", ""), (str,)),
    ]
    for key in ("source", "sha256", "tensors_sha256", "path", "tag"):
        checks.append((f"weights.{key}", rec["weights"].get(key), (str, type(None))))
    for key in ("name", "hash", "base_hash", "task"):
        checks.append((f"protocol.{key}", rec["protocol"].get(key, ""), (str,)))
    checks.append(("protocol.overrides", rec["protocol"].get("overrides", {}), (dict, type(None))))
    checks.append(("protocol.params", rec["protocol"].get("params", {}), (dict,)))
    checks.append(("protocol.content", rec["protocol"].get("content", {}), (dict,)))
    checks.append(("dataset.name", rec["dataset"].get("name", ""), (str,)))
    checks.append(("dataset.protocol_dataset", rec["dataset"].get("protocol_dataset"), (str, type(None))))
    checks.append(("dataset.official_split", rec["dataset"].get("official_split"), (dict, type(None))))
    checks.append(("dataset.split_family", rec["dataset"].get("split_family", "satdino"), (str,)))
    checks.append(("dataset.split_use", rec["dataset"].get("split_use"), (dict, type(None))))
    for key in ("is_subset", "train_equals_val"):
        checks.append((f"dataset.{key}", rec["dataset"].get(key, False), (bool,)))
    summary = rec.get("summary", {})
    for key in ("top1_per_scale", "ci", "seeds", "robustness", "draws"):
        checks.append((f"summary.{key}", summary.get(key, {}), (dict,)))
    for where, value, types in checks:
        if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
            want = " or ".join(_type_name(t()) if t is not type(None) else "null" for t in types)
            return f"{where} must be {want}, got {_show(value)}"
    for key in SUMMARY_NUMBERS:
        if key in summary and summary[key] is not None and not _is_number(summary[key]):
            return f"summary.{key} must be a number, got {_show(summary[key])}"
    crop = summary.get("crop")
    if crop is not None and not (isinstance(crop, int) and not isinstance(crop, bool) and crop > 0):
        return f"summary.crop must be a positive integer, got {_show(crop)}"
    for scale, v in summary.get("top1_per_scale", {}).items():
        try:
            ok = float(scale) > 0
        except ValueError:
            ok = False
        if not ok:
            return f"summary.top1_per_scale key {scale[:40]!r} is not a scale (a positive number)"
        if v is not None and not _is_number(v):
            return f"summary.top1_per_scale[{scale}] must be a number, got {_show(v)}"
    for name, iv in summary.get("ci", {}).items():
        if name == "top1_per_scale" and isinstance(iv, dict):  # {scale: [lo, hi]} of a multi-scale kNN record
            for scale, siv in iv.items():
                if siv is not None and not _is_interval(siv):
                    return f"summary.ci.top1_per_scale[{str(scale)[:40]}] must be [lo, hi] numbers, got {_show(siv)}"
            continue
        if iv is not None and not _is_interval(iv):
            return f"summary.ci.{name[:40]} must be [lo, hi] numbers, got {_show(iv)}"
    for name, v in summary.get("robustness", {}).items():
        if v is not None and not _is_number(v):
            return f"summary.robustness.{name[:40]} must be a number, got {_show(v)}"
    return value_problem(rec)  # what the numbers mean: ranges, intervals, k, seeds, date, sha256


def read_record(path: str | os.PathLike, *, follow_symlinks: bool = False) -> "Record":
    """One record file, checked: a regular file (symbolic links not followed unless ``follow_symlinks``, as for a file
    the user names; FIFOs and devices never opened) of at most :data:`MAX_RECORD_BYTES`, strict JSON (finite numbers,
    bounded nesting) that passes :func:`record_problem`. Raises :class:`ResultsError` ``<path>: <problem>``."""
    try:
        data = read_bytes_bounded(path, MAX_RECORD_BYTES, follow_symlinks=follow_symlinks)
        rec = parse_json_bounded(data, MAX_RECORD_DEPTH)
    except UntrustedFileError as exc:
        raise ResultsError(f"{path} {exc}") from None
    except OSError as exc:
        raise ResultsError(f"{path} is not readable ({exc.strerror or exc})") from None
    problem = record_problem(rec)
    if problem:
        raise ResultsError(f"{path}: {problem}")
    rec = Record(rec)
    rec["_path"] = str(path)
    return rec


def _warn_skip(path: Path, why: str) -> None:
    print(f"satbench: warning: skipped {path}: {why}", file=sys.stderr)


def read_records(results_dir: str | os.PathLike | None = None, task: str | None = None,
                 on_skip: Optional[Callable[[Path, str], None]] = None) -> list[dict[str, Any]]:
    """All valid records in ``results_dir`` (recursively), optionally of one task, oldest first.

    Every ``*.json`` entry that is not a usable record is skipped with one warning line on stderr naming the file and
    the problem (``on_skip(path, why)`` replaces the warning): symbolic links (not followed), FIFOs, devices and
    sockets (never opened), files over :data:`MAX_RECORD_BYTES`, invalid or non-record JSON, and records whose fields
    have the wrong types (:func:`record_problem`). Sub-folders are searched; symbolic links to folders are not followed.
    """
    folder = Path(results_dir) if results_dir is not None else default_results_dir()
    if not folder.exists():
        return []
    skip = on_skip or _warn_skip
    candidates: list[Path] = []

    def unlistable(exc: OSError) -> None:
        skip(Path(exc.filename or folder), f"cannot list this folder ({exc.strerror or exc})")

    for dirpath, dirnames, filenames in os.walk(folder, onerror=unlistable, followlinks=False):
        dirnames.sort()
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            if name.endswith(".json") and (name in filenames or os.path.islink(p)):
                candidates.append(p)
    out = []
    for path in sorted(candidates):
        try:
            rec = read_record(path)
        except ResultsError as exc:
            msg = str(exc)
            skip(path, msg[len(str(path)):].lstrip(": ") if msg.startswith(str(path)) else msg)
            continue
        if task is None or rec.get("task") == task:
            out.append(rec)
    out.sort(key=date_key)
    return out


def iter_summary(records: Iterable[dict[str, Any]]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for r in records:
        yield r["model"], r["dataset"].get("name", ""), r.get("summary", {})
