"""Where a result record goes and what it is called: the record schema tag, its required fields, the default results
folder and the file-stem rule. A leaf module shared by :mod:`satbench.records.results` (records) and
:mod:`satbench.records.predictions` (records with a prediction sidecar), so neither imports the other for it."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterator

from satbench.errors import ResultsError

SCHEMA = "satbench.record/1"
REQUIRED = ("schema", "id", "task", "model", "weights", "protocol", "dataset", "metrics", "provenance")


#: A record is small (a long segmentation run's is well under 1 MiB); anything bigger is not read.
MAX_RECORD_BYTES = 8 << 20
#: Records nest a few levels (protocol.content.params...); deeper JSON is not a record.
MAX_RECORD_DEPTH = 64


def default_results_dir() -> Path:
    """``$SATBENCH_RESULTS`` or ``./results/runs``."""
    return Path(os.environ.get("SATBENCH_RESULTS") or "results/runs")


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s)[:60]


def record_stem(record: dict[str, Any]) -> str:
    """The file stem a record is written under (first attempt): ``<UTC date>_<task>_<model>_<dataset>_<id>``."""
    stamp = record["provenance"]["date"].replace(":", "").replace("-", "")[:15]
    ds = record["dataset"].get("name", "data") if isinstance(record["dataset"], dict) else "data"
    return f"{stamp}_{_slug(record['task'])}_{_slug(record['model'])}_{_slug(ds)}_{record['id']}"


def record_destination(record: dict[str, Any], results_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The folder a record goes to and its base file stem; refuses a record that lacks a required field and a
    results "folder" that is a file."""
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ResultsError(f"record lacks required fields: {', '.join(missing)}")
    folder = Path(results_dir) if results_dir is not None else default_results_dir()
    if folder.exists() and not folder.is_dir():
        raise ResultsError(f"results folder {folder} is not a directory")
    return folder, record_stem(record)


def candidate_stems(base: str, tries: int = 100) -> Iterator[str]:
    """``base``, ``base-1``, ``base-2``...: the names a new record tries in turn (names are taken exclusively)."""
    yield base
    for attempt in range(1, tries):
        yield f"{base}-{attempt}"
