"""Where the shipped data lives: model cards, protocols, reference results, bundled datasets.

In a non-editable install these are package data (``satbench._models``, ``satbench._tasks``,
``satbench._reference``, mapped from the repository's top-level ``models/``, ``tasks/`` and
``results/reference/`` by ``pyproject.toml``). From a source checkout they are read in place.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # satbench/
_REPO_ROOT = _PACKAGE.parent


def _locate(package_dir: str, repo_rel: str) -> Path:
    """``satbench/<package_dir>`` in an installed wheel, else ``<repo>/<repo_rel>`` in a source checkout or editable
    install. (These data packages have no ``__init__.py``: ``importlib.resources`` would hand back a namespace
    ``MultiplexedPath``, so the folder is located directly.)"""
    p = _PACKAGE / package_dir
    if p.is_dir():
        return p
    p = _REPO_ROOT / repo_rel
    if p.is_dir():
        return p
    raise FileNotFoundError(f"satbench data folder {repo_rel!r} is missing from this installation")


def models_dir() -> Path:
    """Folder holding the model cards (``*.yaml``)."""
    return _locate("_models", "models")


def tasks_dir() -> Path:
    """Folder holding the protocols (``tasks/<task>/<name>.yaml``) and segmentation configs."""
    return _locate("_tasks", "tasks")


def reference_dir() -> Path:
    """Folder holding the papers' reference numbers."""
    return _locate("_reference", "results/reference")


def bundled_data_dir() -> Path:
    """Folder holding bundled real datasets (package data of ``satbench.data``)."""
    return _PACKAGE / "data" / "bundled"


def satbench_home() -> Path:
    """``$SATBENCH_HOME`` or ``~/.cache/satbench``: weights cache and feature cache live here."""
    return Path(os.environ.get("SATBENCH_HOME") or Path.home() / ".cache" / "satbench")
