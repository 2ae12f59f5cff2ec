"""The public call ``satbench.leaderboard(records)``: records (or a results folder) -> the leaderboard tables as one
document. It lives in this package, which reads records through :mod:`satbench.records.results`, so that the leaderboard never
imports :mod:`satbench.api` (the API delegates here)."""

from __future__ import annotations

import os
from typing import Any, Iterable, Optional

from satbench.records.results import read_records
from satbench.leaderboard.render import render
from satbench.leaderboard.tables import build_tables


def leaderboard(records: Optional[Iterable[Any]] = None, *, results_dir: Optional[str | os.PathLike] = None,
                task: Optional[str] = None, fmt: str = "md") -> str:
    """The leaderboard tables (records next to the papers' numbers) as one document in ``fmt``; ``records`` default
    to every record in ``results_dir`` (default ``$SATBENCH_RESULTS`` or ``./results/runs``)."""
    recs = list(records) if records is not None else read_records(results_dir)
    return "\n".join(render(t, fmt) for t in build_tables(recs, task))
