"""Provenance of a run: satbench version, git commit, device, date, host, library versions."""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any

from satbench._version import __version__


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit of the satbench source tree when it is a git checkout, else the commit the installed wheel was
    built from (``satbench/_build_info.py``, written by setup.py), else None (a release built without git)."""
    root = Path(__file__).resolve().parents[2]  # satbench/records/provenance.py -> the checkout
    if not (root / ".git").exists():
        return built_commit()
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        commit = out.stdout.strip() or None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return f"{commit}-dirty" if commit and dirty else commit
    except (OSError, subprocess.SubprocessError):
        return None


def built_commit() -> str | None:
    """The commit stamped into the package at build time, or None (no stamp: a source tree, or built without git)."""
    try:
        from satbench._build_info import GIT_COMMIT  # type: ignore[import-not-found]
    except ImportError:
        return None
    return GIT_COMMIT if isinstance(GIT_COMMIT, str) and GIT_COMMIT else None


def source_label(commit: str | None, version: str | None) -> str:
    """How a record names its source: the commit, else ``release X.Y.Z``, else ``unknown``."""
    if commit:
        return commit
    return f"release {version}" if version else "unknown"


def device_name(device: Any = None) -> str:
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(dev)}"
    return f"cpu:{platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


def provenance(device: Any = None) -> dict[str, Any]:
    """Everything needed to tell where and with what a number was computed."""
    import numpy
    import torch

    try:
        import faiss  # noqa: F401

        faiss_v = faiss.__version__
    except Exception:  # pragma: no cover - faiss is a hard dependency
        faiss_v = None
    return {
        "satbench_version": __version__,
        "git_commit": git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "device": device_name(device),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "faiss": faiss_v,
        "argv": sys.argv[1:],
    }
