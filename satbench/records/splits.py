"""Which split family a record ran on and which of its splits it reports (records are untrusted: wrong types read as
the record checks in :func:`satbench.records.results.record_problem` refuse them).

``dataset.split_family``: ``satdino`` (SatDINO's official train/val; records written before the field existed are
``satdino``) or a published family such as ``torchgeo`` (TorchGeo's train/val/test). ``dataset.split_use`` maps each
split to what the run did with it: ``fit``, ``report``, ``held-out`` (not read) or ``select`` (head selection and
temperature, cached-linear); without it, a record reports ``val``.
Runs of different families are never compared (:mod:`satbench.stats.compare`) nor shown in one leaderboard column.
"""

from __future__ import annotations

from typing import Any

#: The split family of a record that names none (SatDINO's official splits).
DEFAULT_FAMILY = "satdino"


def split_family(rec: dict[str, Any]) -> str:
    """``dataset.split_family``, or ``satdino`` when the record names none."""
    ds = rec.get("dataset")
    family = ds.get("split_family") if isinstance(ds, dict) else None
    return family if isinstance(family, str) and family else DEFAULT_FAMILY


def reported_split(rec: dict[str, Any]) -> str:
    """The split the record's numbers are on: the one ``dataset.split_use`` marks ``report``, else ``val``."""
    ds = rec.get("dataset")
    use = ds.get("split_use") if isinstance(ds, dict) else None
    if isinstance(use, dict):
        for split, what in use.items():
            if what == "report" and isinstance(split, str):
                return split
    return "val"
