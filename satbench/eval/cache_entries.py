"""What the feature cache holds and how its entries are named: an entry is ``<shard>/<digest>.{json,npy}`` where
``digest`` is the canonical hash of the key (everything that changes the features, the images' identity included);
:class:`CacheScan` is what a walk of the cache folder found, :class:`ClearResult` what a purge did."""


import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence


from satbench.errors import DataError, SatbenchError

#: ``stat``: path, size, mtime_ns, ctime_ns and inode of every image (default); ``sha256``: every image's bytes.
IDENTITIES = ("stat", "sha256")

ENTRY_FILE = re.compile(r"^([0-9a-f]{64})\.(npy|json)$")
SHARD = re.compile(r"^[0-9a-f]{2}$")
ENTRY_TMP = re.compile(r"^\.([0-9a-f]{64})\.(?:npy|json)\.[a-z0-9_]{8}\.tmp$")  # satbench.io.atomic.atomic_write temp files


def default_identity() -> str:
    """``$SATBENCH_CACHE_IDENTITY`` (``stat`` or ``sha256``), else ``stat``."""
    return os.environ.get("SATBENCH_CACHE_IDENTITY") or "stat"


@dataclass
class CacheEntry:
    key: str
    path: Path
    meta: dict[str, Any]
    nbytes: int


@dataclass
class CacheScan:
    """What :meth:`FeatureCache.scan` found: recognised ``entries`` (and recognised but ``damaged`` ones, with the
    reason; ``legacy`` ones of the earlier format), satbench's own leftover ``temp`` files, and ``foreign`` things
    (path, reason or None) it leaves alone."""

    entries: list[CacheEntry] = field(default_factory=list)
    damaged: list[tuple[CacheEntry, str]] = field(default_factory=list)
    legacy: list[CacheEntry] = field(default_factory=list)  # entries of the earlier format (never used, clearable)
    temp: list[Path] = field(default_factory=list)
    foreign: list[tuple[Path, Optional[str]]] = field(default_factory=list)


@dataclass
class ClearResult:
    removed: int  # entries (complete or damaged) whose files were deleted
    files: int  # files deleted, leftover temporary files included
    foreign: int  # files / folders left alone because satbench did not write them
    problems: list[str] = field(default_factory=list)  # files that could not be deleted



def image_identity(paths: Sequence[str | os.PathLike], mode: str = "stat") -> dict[str, Any]:
    """A digest identifying the images at ``paths`` (in order), for cache keys.

    ``stat``: each file's path, size, mtime_ns, ctime_ns and inode (an in-place rewrite changes ctime even when a tool
    restores mtime); ``sha256``: each file's bytes (exact; reads every image on every run).
    """
    if mode not in IDENTITIES:
        raise SatbenchError(f"cache identity must be one of {', '.join(IDENTITIES)}, got {mode!r}")
    h = hashlib.sha256()
    for p in paths:
        try:
            if mode == "stat":
                st = os.stat(p)
                h.update(f"{os.fspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\n".encode())
            else:
                with open(p, "rb") as fh:
                    h.update(hashlib.file_digest(fh, "sha256").digest())
        except OSError as exc:
            raise DataError(f"image {p} cannot be read: {exc.strerror or exc}") from None
    return {"mode": mode, "n": len(paths), "sha256": h.hexdigest()}


