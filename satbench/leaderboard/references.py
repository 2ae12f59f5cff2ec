"""The papers' reference numbers (``results/reference/*.json``): loaded, keyed to a model, labelled with their source."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Optional

from satbench.errors import ResultsError
from satbench.runtime.resources import reference_dir
from satbench.leaderboard.layout import TaskSpec


# ----------------------------------------------------------------------------------------------------------------------
# References
# ----------------------------------------------------------------------------------------------------------------------
def load_references(folder: Optional[Path] = None) -> list[dict[str, Any]]:
    """Every ``*.json`` reference file (with its ``_name``), sorted by file name."""
    folder = Path(folder) if folder is not None else reference_dir()
    out = []
    for p in sorted(folder.glob("*.json")):
        try:
            ref = json.loads(p.read_text())
        except (json.JSONDecodeError, OSError, UnicodeDecodeError) as exc:
            raise ResultsError(f"reference file {p} is not readable JSON ({exc})") from None
        if not isinstance(ref, dict) or not isinstance(ref.get("models"), dict):
            raise ResultsError(f"reference file {p} must be a mapping with 'models' and tables")
        ref["_name"] = p.stem
        out.append(ref)
    return out


def ref_key(ref: dict[str, Any], model: str) -> Optional[str]:
    """The reference model key whose ``match`` regex matches the satbench model name."""
    for key, m in ref["models"].items():
        if re.search(m.get("match", f"^{re.escape(key)}$"), model):
            return key
    return None


def ref_source(ref: dict[str, Any]) -> str:
    """The short source name: ``SatDINO README``, ``Scale-MAE paper`` (the source text up to its first bracket)."""
    return str(ref.get("source") or ref["_name"]).split(" (")[0].strip()


def ref_label(ref: dict[str, Any], key: str) -> str:
    label = str(ref["models"][key].get("label", key))
    suffix = f" ({ref_source(ref)})"
    return label[: -len(suffix)] if label.endswith(suffix) else label


def ref_values(spec: TaskSpec, table: dict[str, Any]) -> dict[str, dict[str, float]]:
    """column key -> {reference model key: value}."""
    out: dict[str, dict[str, float]] = {}
    for ds, vals in (table.get("values") or {}).items():
        if spec.by_crop:
            for crop, v in vals.items():
                out[f"{ds}@{crop}"] = v
        else:
            out[ds] = vals
    return out
