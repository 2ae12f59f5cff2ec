"""Result records: one JSON file per run with full provenance, written atomically, never overwritten."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Any, Iterable

from .errors import ResultsError
from .io import atomic_write_json
from .provenance import provenance

SCHEMA = "satbench.record/1"
REQUIRED = ("schema", "id", "task", "model", "weights", "protocol", "dataset", "metrics", "provenance")


def default_results_dir() -> Path:
    """``$SATBENCH_RESULTS`` or ``./results/runs``."""
    return Path(os.environ.get("SATBENCH_RESULTS") or "results/runs")


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

    def write(self, results_dir: str | os.PathLike | None = None) -> Path:
        """Write atomically as a new file in ``results_dir`` (default: :func:`default_results_dir`)."""
        path = write_record(self, results_dir)
        self["_path"] = str(path)
        return path


def make_record(*, task: str, model: str, weights: dict[str, Any], protocol: dict[str, Any],
                dataset: dict[str, Any], metrics: dict[str, Any], summary: dict[str, Any] | None = None,
                extractor: dict[str, Any] | None = None, timings: dict[str, Any] | None = None,
                extra: dict[str, Any] | None = None, device: Any = None) -> Record:
    """Assemble a record. ``summary`` holds the headline numbers the leaderboard shows."""
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
        "extractor": extractor or {},
        "timings": timings or {},
        "extra": extra or {},
        "provenance": provenance(device),
    })


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s)[:60]


def write_record(record: dict[str, Any], results_dir: str | os.PathLike | None = None) -> Path:
    """Write ``record`` atomically as a new file in ``results_dir``; returns its path."""
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ResultsError(f"record lacks required fields: {', '.join(missing)}")
    folder = Path(results_dir) if results_dir is not None else default_results_dir()
    if folder.exists() and not folder.is_dir():
        raise ResultsError(f"results folder {folder} is not a directory")
    stamp = record["provenance"]["date"].replace(":", "").replace("-", "")[:15]
    ds = record["dataset"].get("name", "data") if isinstance(record["dataset"], dict) else "data"
    base = f"{stamp}_{_slug(record['task'])}_{_slug(record['model'])}_{_slug(ds)}_{record['id']}"
    public = {k: v for k, v in record.items() if not str(k).startswith("_")}
    for attempt in range(100):
        name = f"{base}.json" if attempt == 0 else f"{base}-{attempt}.json"
        try:
            return atomic_write_json(folder / name, public, exclusive=True)
        except FileExistsError:
            continue
    raise ResultsError(f"could not find a free record name in {folder}")


def read_records(results_dir: str | os.PathLike | None = None, task: str | None = None) -> list[dict[str, Any]]:
    """All valid records in ``results_dir`` (recursively), optionally of one task, oldest first.

    A file that is not a satbench record is an error naming it (records are never half-written).
    """
    folder = Path(results_dir) if results_dir is not None else default_results_dir()
    if not folder.exists():
        return []
    out = []
    for path in sorted(folder.rglob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
            raise ResultsError(f"{path}: not a readable record ({exc})") from None
        if not isinstance(rec, dict) or rec.get("schema") != SCHEMA:
            continue  # other JSON (e.g. leaderboard exports) is not a record
        rec = Record(rec)
        rec["_path"] = str(path)
        if task is None or rec.get("task") == task:
            out.append(rec)
    out.sort(key=lambda r: r["provenance"].get("date", ""))
    return out


def iter_summary(records: Iterable[dict[str, Any]]) -> Iterable[tuple[str, str, dict[str, Any]]]:
    for r in records:
        yield r["model"], r["dataset"].get("name", ""), r.get("summary", {})
