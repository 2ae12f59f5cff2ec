"""The on-disk feature cache: extract once, evaluate many times.

Entries are keyed by the sha256 of a canonical key dict, which callers build from everything that
changes the features: weights sha256 (or random seed), model and its options, split-file hash,
transform and size, normalisation, layer, bf16. Each entry is ``<key>.npy`` + ``<key>.json`` (the key
and metadata), written atomically, so concurrent writers of the same key are safe (last rename wins,
both wrote identical content) and a reader never sees a partial file.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .io import atomic_write_bytes, atomic_write_json, canonical_hash
from .resources import satbench_home


def default_cache_dir() -> Path:
    """``$SATBENCH_CACHE`` or ``$SATBENCH_HOME/cache/features``."""
    return Path(os.environ.get("SATBENCH_CACHE") or satbench_home() / "cache" / "features")


@dataclass
class CacheEntry:
    key: str
    path: Path
    meta: dict[str, Any]
    nbytes: int


class FeatureCache:
    """A content-addressed store of feature arrays. ``enabled=False`` makes every lookup miss and
    every store a no-op (``--no-cache``)."""

    def __init__(self, root: Optional[str | os.PathLike] = None, enabled: bool = True) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.enabled = enabled
        self.hits = 0
        self.misses = 0
        self.corrupt = 0

    @staticmethod
    def key_of(key: dict[str, Any]) -> str:
        return canonical_hash(key)

    def _paths(self, digest: str) -> tuple[Path, Path]:
        sub = self.root / digest[:2]
        return sub / f"{digest}.npy", sub / f"{digest}.json"

    def get(self, key: dict[str, Any]) -> Optional[np.ndarray]:
        """The cached array for ``key``, or None."""
        if not self.enabled:
            self.misses += 1
            return None
        npy, meta = self._paths(self.key_of(key))
        if not (npy.is_file() and meta.is_file()):
            self.misses += 1
            return None
        try:
            arr = np.load(npy, allow_pickle=False)
            info = json.loads(meta.read_text())
        except (ValueError, OSError, EOFError) as exc:
            return self._corrupt(npy, f"unreadable ({type(exc).__name__})")
        if list(arr.shape) != info.get("shape") or str(arr.dtype) != info.get("dtype"):
            return self._corrupt(npy, f"holds {list(arr.shape)} {arr.dtype}, its metadata says "
                                      f"{info.get('shape')} {info.get('dtype')}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            return self._corrupt(npy, "holds non-finite values")
        self.hits += 1
        return arr

    def _corrupt(self, npy: Path, why: str) -> None:
        """A damaged entry is never used: say so on stderr, count a miss; the caller recomputes and rewrites it."""
        print(f"satbench: warning: feature cache entry {npy} {why}; recomputing it", file=sys.stderr)
        self.corrupt += 1
        self.misses += 1
        return None

    def put(self, key: dict[str, Any], array: np.ndarray, meta: Optional[dict[str, Any]] = None) -> None:
        """Store ``array`` under ``key`` (atomic; array first, then the metadata that marks it valid)."""
        if not self.enabled:
            return
        digest = self.key_of(key)
        npy, meta_path = self._paths(digest)
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
        atomic_write_bytes(npy, buf.getvalue())
        atomic_write_json(meta_path, {"key": key, "shape": list(array.shape), "dtype": str(array.dtype), **(meta or {})})

    def entries(self) -> list[CacheEntry]:
        """All complete entries."""
        out = []
        if not self.root.exists():
            return out
        for meta_path in sorted(self.root.glob("*/*.json")):
            npy = meta_path.with_suffix(".npy")
            if not npy.is_file():
                continue
            try:
                meta = json.loads(meta_path.read_text())
            except (json.JSONDecodeError, OSError):
                continue
            out.append(CacheEntry(meta_path.stem, npy, meta, npy.stat().st_size))
        return out

    def clear(self) -> int:
        """Delete every entry; returns how many were removed."""
        n = len(self.entries())
        if self.root.exists():
            shutil.rmtree(self.root)
        return n
