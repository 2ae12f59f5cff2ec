"""Hashes satbench records: the sha256 of a file or of bytes, and the canonical hash of a JSON-able object (the
protocol hash, the feature-cache key)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from satbench.io.bounded import open_regular


def json_default(obj: Any) -> Any:
    """JSON form of numpy scalars and arrays and of paths (for :func:`json.dumps`'s ``default``)."""
    import numpy as np

    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")



def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file's bytes."""
    import hashlib

    h = hashlib.sha256()
    with open_regular(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def canonical_hash(obj: Any) -> str:
    """sha256 of the canonical JSON form (sorted keys, no whitespace) of ``obj``."""
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=json_default).encode()
    return sha256_bytes(data)
