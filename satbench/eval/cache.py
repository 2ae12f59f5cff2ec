"""The on-disk feature cache: extract once, evaluate many times.

Entries are keyed by the sha256 of a canonical key dict, which callers build from everything that
changes the features: weights sha256 (or random seed), model and its options, split-file hash, the
identity of every image (:meth:`FeatureCache.image_identity`), transform and size, normalisation,
layer, bf16. Each entry is ``<shard>/<digest>.json`` (format marker, the full key, shape, dtype and the
sha256 of the array file) + ``<shard>/<digest>.npy``, each written atomically (metadata first), so
concurrent writers of the same key are safe and a reader never sees a partial file.

Nothing in the cache folder is trusted by its name: :meth:`FeatureCache.get` uses an entry only when
its metadata carries the marker and exactly the requested key, and the array file's bytes have the
recorded sha256, shape, dtype and finite values. Reads never follow a symbolic link inside the cache,
never open anything but regular files (no FIFO can block), cap the metadata's size and nesting depth
and check the ``.npy`` header against the file size before any array is allocated. Anything else is
"damaged": one warning line naming it, recomputed and rewritten. ``cache ls`` / ``cache clear`` only
list / delete entries recognised by their metadata (and satbench's own leftover temporary files); every
other file or folder is left alone and counted.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from satbench.errors import SatbenchError
from satbench.io.atomic import atomic_write_bytes, atomic_write_json
from satbench.io.hashing import canonical_hash
from satbench.runtime.resources import satbench_home
from satbench.eval.cache_entries import (IDENTITIES, ENTRY_FILE, ENTRY_TMP, SHARD, CacheEntry, CacheScan,
                                         ClearResult, default_identity, image_identity)
from satbench.io.bounded import file_kind
from satbench.eval.cache_files import (FORMAT, CacheMiss, DamagedEntry, meta_kind, npy_consistent, read_meta,
                                       read_npy, scandir_sorted, unlink_regular)

_PROBE_PREFIX = ".satbench-cache-check-"
_PROBE_TMP = re.compile(r"^\.satbench-cache-check-[a-z0-9_]{8}\.tmp$")


def default_cache_dir() -> Path:
    """``$SATBENCH_CACHE`` or ``$SATBENCH_HOME/cache/features``."""
    return Path(os.environ.get("SATBENCH_CACHE") or satbench_home() / "cache" / "features")




def warn(msg: str) -> None:
    """One ``satbench: warning:`` line on stderr."""
    print(f"satbench: warning: {msg}", file=sys.stderr)


def probe_folder(folder: Path) -> Optional[str]:
    """None when ``folder`` is (or can be made) a folder this process can write in, else the reason."""
    try:
        if folder.exists() and not folder.is_dir():
            return "it is not a directory"
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=_PROBE_PREFIX, suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


class FeatureCache:
    """A content-addressed store of feature arrays. ``enabled=False`` makes every lookup miss and
    every store a no-op (``--no-cache``). ``identity`` (``stat`` / ``sha256``) is how image files are identified in
    keys (:func:`image_identity`)."""

    def __init__(self, root: Optional[str | os.PathLike] = None, enabled: bool = True,
                 identity: Optional[str] = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()
        self.enabled = enabled
        self.identity = identity or default_identity()
        if self.identity not in IDENTITIES:
            raise SatbenchError(f"feature cache identity must be one of {', '.join(IDENTITIES)}, got {self.identity!r}"
                                f" (--cache-identity / $SATBENCH_CACHE_IDENTITY)")
        self.disabled_reason: Optional[str] = None
        self.hits = 0
        self.misses = 0
        self.corrupt = 0

    @classmethod
    def checked(cls, root: Optional[str | os.PathLike] = None, enabled: bool = True,
                identity: Optional[str] = None) -> "FeatureCache":
        """A cache whose folder was checked before any work: created if needed and a probe file written and removed.
        When that fails the run goes on without caching: one warning line names the folder, and ``enabled`` is False
        with the reason in ``disabled_reason`` (recorded by the callers)."""
        cache = cls(root, enabled=enabled, identity=identity)
        if enabled:
            why = probe_folder(cache.root)
            if why is not None:
                cache._disable(f"feature cache folder {cache.root} is not usable ({why})")
        return cache

    def _disable(self, reason: str) -> None:
        warn(f"{reason}; running without the feature cache (set $SATBENCH_CACHE or --cache-dir to a writable folder)")
        self.enabled = False
        self.disabled_reason = reason

    def describe(self) -> dict[str, Any]:
        """What a record says about the cache."""
        d: dict[str, Any] = {"enabled": self.enabled, "identity": self.identity}
        if self.disabled_reason:
            d["disabled_reason"] = self.disabled_reason
        return d

    def image_identity(self, paths: Sequence[str | os.PathLike]) -> dict[str, Any]:
        """:func:`image_identity` of ``paths`` in this cache's identity mode."""
        return image_identity(paths, self.identity)

    @staticmethod
    def key_of(key: dict[str, Any]) -> str:
        return canonical_hash(key)

    def _paths(self, digest: str) -> tuple[Path, Path]:
        sub = self.root / digest[:2]
        return sub / f"{digest}.npy", sub / f"{digest}.json"

    def get(self, key: dict[str, Any]) -> Optional[np.ndarray]:
        """The cached array for ``key``, or None (a miss; a damaged entry also warns once)."""
        if not self.enabled:
            self.misses += 1
            return None
        digest = self.key_of(key)
        try:
            arr = self._load(digest, key)
        except CacheMiss:
            self.misses += 1
            return None
        except DamagedEntry as d:
            return self._corrupt(d.path, d.why)
        self.hits += 1
        return arr

    def _load(self, digest: str, key: dict[str, Any]) -> np.ndarray:
        npy, meta_path = self._paths(digest)
        try:
            st = os.lstat(npy.parent)
        except FileNotFoundError:
            raise CacheMiss() from None
        except OSError as exc:
            raise DamagedEntry(npy.parent, f"cannot be inspected ({exc.strerror or exc})") from None
        if not stat.S_ISDIR(st.st_mode):
            raise DamagedEntry(npy.parent, f"is {file_kind(st.st_mode)}, not a cache folder (not followed)")
        meta = read_meta(meta_path)
        if meta.get("format") != FORMAT or meta_kind(meta, digest) != "current":
            raise DamagedEntry(meta_path, "is not satbench cache metadata for this entry")
        # meta_kind checked canonical_hash(stored key) == digest == canonical_hash(requested key): the stored key
        # is the requested one in canonical form.
        return read_npy(npy, meta)

    def _corrupt(self, path: Path, why: str) -> None:
        """A damaged entry is never used: say so on stderr, count a miss; the caller recomputes and rewrites it."""
        warn(f"feature cache entry {path} {why}; recomputing it")
        self.corrupt += 1
        self.misses += 1
        return None

    def put(self, key: dict[str, Any], array: np.ndarray, meta: Optional[dict[str, Any]] = None) -> None:
        """Store ``array`` under ``key`` (atomic; the metadata with the array's sha256 first, then the array). A failed
        write is a warning and turns caching off for the rest of the run: features are never lost over the cache."""
        if not self.enabled:
            return
        digest = self.key_of(key)
        npy, meta_path = self._paths(digest)
        try:
            st = os.lstat(npy.parent)
            if not stat.S_ISDIR(st.st_mode):
                warn(f"feature cache folder {npy.parent} is {file_kind(st.st_mode)}, not a cache folder; not caching into it")
                return
        except FileNotFoundError:
            pass
        except OSError as exc:
            self._disable(f"feature cache folder {npy.parent} cannot be inspected ({exc.strerror or exc})")
            return
        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
        data = buf.getvalue()
        doc = {**(meta or {}), "format": FORMAT, "digest": digest, "key": key, "shape": list(array.shape),
               "dtype": str(array.dtype), "sha256": hashlib.sha256(data).hexdigest()}
        try:
            atomic_write_json(meta_path, doc)
            atomic_write_bytes(npy, data)
        except SatbenchError as exc:
            self._disable(f"could not write to the feature cache: {exc}")

    # -----------------------------------------------------------------------------------------------------------------
    # Listing and clearing: only what satbench recognises as its own
    # -----------------------------------------------------------------------------------------------------------------
    def scan(self) -> CacheScan:
        """Classify everything directly in the cache folder and its two-character shard folders, without following
        symbolic links or opening anything but regular files; metadata is read bounded, arrays only up to the header."""
        out = CacheScan()
        root = self.root
        if not root.exists():
            return out
        if not root.is_dir():
            raise SatbenchError(f"feature cache folder {root} is not a directory")
        for item in scandir_sorted(root, out):
            if SHARD.match(item.name) and item.is_dir(follow_symlinks=False):
                self._scan_shard(Path(item.path), out)
            elif _PROBE_TMP.match(item.name) and item.is_file(follow_symlinks=False):
                out.temp.append(Path(item.path))
            else:
                why = "is a symbolic link (not followed)" if item.is_symlink() and SHARD.match(item.name) else None
                out.foreign.append((Path(item.path), why))
        return out

    def _scan_shard(self, shard: Path, out: CacheScan) -> None:
        files: dict[str, dict[str, os.DirEntry]] = {}
        for item in scandir_sorted(shard, out):
            m = ENTRY_FILE.match(item.name)
            t = ENTRY_TMP.match(item.name)
            if m and m.group(1).startswith(shard.name):
                files.setdefault(m.group(1), {})[m.group(2)] = item
            elif t and t.group(1).startswith(shard.name) and item.is_file(follow_symlinks=False):
                out.temp.append(Path(item.path))
            else:
                out.foreign.append((Path(item.path), None))
        for digest, parts in sorted(files.items()):
            js, npy = parts.get("json"), parts.get("npy")
            if js is None:
                out.foreign.append((Path(npy.path), None))  # an array without metadata: not recognisable as ours
                continue
            try:
                meta = read_meta(Path(js.path))
                kind = meta_kind(meta, digest)
                if kind is None:
                    raise DamagedEntry(Path(js.path), "is not satbench cache metadata for this entry")
            except (CacheMiss, DamagedEntry) as exc:
                why = exc.why if isinstance(exc, DamagedEntry) else "vanished while listing"
                out.foreign.append((Path(js.path), why))
                if npy is not None:
                    out.foreign.append((Path(npy.path), None))
                continue
            npy_path = shard / f"{digest}.npy"
            size, why = npy_consistent(npy_path, meta)
            entry = CacheEntry(digest, npy_path, meta, size)
            if npy is not None and not npy.is_file(follow_symlinks=False):
                out.foreign.append((npy_path, None))  # a symlink / FIFO at an entry's name is not ours to delete
            if why is not None:
                out.damaged.append((entry, why))
            elif kind == "legacy":
                out.legacy.append(entry)
            else:
                out.entries.append(entry)

    def entries(self) -> list[CacheEntry]:
        """All complete, recognised entries (header-checked; the array bytes are verified on use)."""
        return self.scan().entries

    def purge(self, verbose: bool = True) -> ClearResult:
        """Delete every recognised entry (both files, damaged ones too) and satbench's leftover temporary files; never
        a foreign file, a symbolic link or the folder itself. Shard folders emptied here are removed."""
        s = self.scan()
        res = ClearResult(0, 0, len(s.foreign))
        if verbose:
            for path, why in s.foreign:
                if why:
                    warn(f"{path} {why}; not a satbench cache entry, left alone")
            for entry, why in s.damaged:
                warn(f"feature cache entry {entry.path.with_suffix('.json')} was damaged ({why}); removing it")
        touched: set[Path] = set()
        for entry in s.entries + [e for e, _ in s.damaged] + s.legacy:
            gone = 0
            for p in (entry.path.with_suffix(".json"), entry.path):
                gone += unlink_regular(p, res)
            if gone:
                res.removed += 1
                res.files += gone
                touched.add(entry.path.parent)
        for p in s.temp:
            if unlink_regular(p, res):
                res.files += 1
                touched.add(p.parent)
        for shard in sorted(touched):
            if shard != self.root:
                try:
                    shard.rmdir()  # only succeeds when empty
                except OSError:
                    pass
        return res

    def clear(self) -> int:
        """Delete every recognised entry (see :meth:`purge`); returns how many were removed."""
        return self.purge(verbose=False).removed
