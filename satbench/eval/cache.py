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

import errno
import hashlib
import io
import json
import os
import re
import stat
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from satbench.errors import DataError, SatbenchError
from satbench.io.atomic import atomic_write_bytes, atomic_write_json
from satbench.io.hashing import canonical_hash
from satbench.runtime.resources import satbench_home

FORMAT = "satbench.feature-cache/1"
#: ``stat``: path, size, mtime_ns, ctime_ns and inode of every image (default); ``sha256``: every image's bytes.
IDENTITIES = ("stat", "sha256")
META_MAX_BYTES = 256 * 1024
META_MAX_DEPTH = 32
NPY_MAX_HEADER = 64 * 1024

_DIGEST = re.compile(r"^([0-9a-f]{64})\.(npy|json)$")
_SHARD = re.compile(r"^[0-9a-f]{2}$")
_ENTRY_TMP = re.compile(r"^\.([0-9a-f]{64})\.(?:npy|json)\.[a-z0-9_]{8}\.tmp$")  # satbench.io.atomic.atomic_write temp files
_PROBE_PREFIX = ".satbench-cache-check-"
_PROBE_TMP = re.compile(r"^\.satbench-cache-check-[a-z0-9_]{8}\.tmp$")


def default_cache_dir() -> Path:
    """``$SATBENCH_CACHE`` or ``$SATBENCH_HOME/cache/features``."""
    return Path(os.environ.get("SATBENCH_CACHE") or satbench_home() / "cache" / "features")


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


class _Missing(Exception):
    """No (complete) entry: a plain cache miss."""


class _Damaged(Exception):
    def __init__(self, path: Path, why: str) -> None:
        super().__init__(why)
        self.path, self.why = path, why


# ---------------------------------------------------------------------------------------------------------------------
# Bounded, non-following reads
# ---------------------------------------------------------------------------------------------------------------------
def _open_regular(path: Path) -> tuple[int, os.stat_result]:
    """An fd of ``path`` opened without following a symbolic link or blocking on a FIFO; a regular file only."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise _Missing() from None
    except OSError as exc:
        raise _Damaged(path, f"cannot be inspected ({exc.strerror or exc})") from None
    if not stat.S_ISREG(st.st_mode):
        raise _Damaged(path, f"is {_kind(st.st_mode)}, not a file satbench wrote (not followed)")
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise _Missing() from None
    except OSError as exc:
        why = "is a symbolic link (not followed)" if exc.errno == errno.ELOOP else f"cannot be read ({exc.strerror or exc})"
        raise _Damaged(path, why) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # swapped between lstat and open
        os.close(fd)
        raise _Damaged(path, f"is {_kind(st.st_mode)}, not a file satbench wrote (not followed)")
    return fd, st


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _read_all(fd: int, size: int, offset: int = 0) -> bytearray:
    """Exactly ``size`` bytes of ``fd`` from ``offset`` (positional reads)."""
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = os.preadv(fd, [view[got:]], offset + got)
        if n == 0:
            break
        got += n
    if got != size:
        raise OSError(errno.EIO, f"file shrank while reading ({got} of {size} bytes)")
    return buf


_JSON_TOKENS = re.compile(r'[\[\]{}"\\]')


def json_depth(text: str, stop_above: Optional[int] = None) -> int:
    """The nesting depth of ``[`` / ``{`` in JSON ``text`` outside strings: one linear pass, no recursion (it stops
    early once the depth exceeds ``stop_above``)."""
    depth = deepest = 0
    in_string = False
    skip = -1  # position of a character escaped by a backslash
    for m in _JSON_TOKENS.finditer(text):
        pos, ch = m.start(), m.group()
        if pos == skip:
            continue
        if in_string:
            if ch == "\\":
                skip = pos + 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if stop_above is not None and deepest > stop_above:
                break
        elif ch in "]}":
            depth -= 1
    return deepest


def read_meta(path: Path) -> dict[str, Any]:
    """The metadata JSON of an entry: a regular file (never followed) of at most ``META_MAX_BYTES`` and
    ``META_MAX_DEPTH`` levels, holding an object. Raises ``_Missing`` / ``_Damaged``."""
    fd, st = _open_regular(path)
    try:
        if st.st_size > META_MAX_BYTES:
            raise _Damaged(path, f"is {st.st_size} bytes, more than the {META_MAX_BYTES} a cache metadata file has")
        data = bytes(_read_all(fd, st.st_size))
    except OSError as exc:
        raise _Damaged(path, f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")
        if json_depth(text, META_MAX_DEPTH) > META_MAX_DEPTH:
            raise _Damaged(path, f"is JSON nested deeper than {META_MAX_DEPTH} levels")
        meta = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Damaged(path, "is not readable JSON metadata") from None
    if not isinstance(meta, dict):
        raise _Damaged(path, "is not a JSON object")
    return meta


def _meta_kind(meta: dict[str, Any], digest: str) -> Optional[str]:
    """``"current"`` when ``meta`` is complete satbench metadata of the entry named ``digest``, ``"legacy"`` for an
    entry of the earlier format (no marker; its key still hashes to its name), None otherwise."""
    key = meta.get("key")
    if not isinstance(key, dict):
        return None
    try:
        if canonical_hash(key) != digest:
            return None
    except (TypeError, ValueError, RecursionError):
        return None
    if meta.get("format") == FORMAT:
        ok = (meta.get("digest") == digest and _valid_shape(meta.get("shape")) and _valid_dtype(meta.get("dtype"))
              and isinstance(meta.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", meta["sha256"]) is not None)
        return "current" if ok else None
    if "format" not in meta and "shape" in meta and "dtype" in meta:
        return "legacy"
    return None


def _valid_shape(shape: Any) -> bool:
    return (isinstance(shape, list) and 1 <= len(shape) <= 8
            and all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**62 for d in shape))


def _valid_dtype(name: Any) -> bool:
    if not isinstance(name, str) or len(name) > 16:
        return False
    try:
        dt = np.dtype(name)
    except TypeError:
        return False
    return dt.kind in "fiub" and not dt.hasobject and str(dt) == name


def _npy_header(fd: int, size: int, path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """Shape, dtype and data offset from the ``.npy`` header (numpy.lib.format, at most ``NPY_MAX_HEADER`` bytes
    read), checked against the file size before anything is allocated."""
    from numpy.lib import format as npf

    try:
        head = io.BytesIO(bytes(_read_all(fd, min(size, NPY_MAX_HEADER + 16))))
        version = npf.read_magic(head)
        if version == (1, 0):
            shape, fortran, dtype = npf.read_array_header_1_0(head, max_header_size=NPY_MAX_HEADER)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npf.read_array_header_2_0(head, max_header_size=NPY_MAX_HEADER)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise _Damaged(path, f"has no readable .npy header ({type(exc).__name__})") from None
    if fortran or dtype.hasobject:
        raise _Damaged(path, "is not a C-ordered numeric .npy array")
    shape = tuple(int(d) for d in shape)
    offset = head.tell()
    need = offset + int(np.prod(shape, dtype=object)) * dtype.itemsize
    if need != size:
        raise _Damaged(path, f"declares {list(shape)} {dtype} ({need} bytes with its header) but the file has "
                             f"{size} bytes")
    return shape, dtype, offset


def _check_header(path: Path, shape: tuple[int, ...], dtype: np.dtype, meta: dict[str, Any]) -> None:
    if list(shape) != meta.get("shape") or str(dtype) != meta.get("dtype"):
        raise _Damaged(path, f"holds {list(shape)} {dtype}, its metadata says {meta.get('shape')} {meta.get('dtype')}")


def read_npy(path: Path, meta: dict[str, Any]) -> np.ndarray:
    """The array of an entry, checked against its metadata: header shape / dtype, header + data size == file size
    (before allocating), sha256 of the file bytes, finite values. Raises ``_Missing`` / ``_Damaged``."""
    fd, st = _open_regular(path)
    try:
        shape, dtype, offset = _npy_header(fd, st.st_size, path)
        _check_header(path, shape, dtype, meta)
        try:
            buf = _read_all(fd, st.st_size)
        except (OSError, MemoryError) as exc:
            raise _Damaged(path, f"cannot be read ({getattr(exc, 'strerror', None) or type(exc).__name__})") from None
    finally:
        os.close(fd)
    if hashlib.sha256(buf).hexdigest() != meta["sha256"]:
        raise _Damaged(path, "does not have the sha256 its metadata records (replaced or altered)")
    arr = np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise _Damaged(path, "holds non-finite values")
    return arr


def _npy_consistent(path: Path, meta: dict[str, Any]) -> tuple[int, Optional[str]]:
    """(file size, None) when the ``.npy`` at ``path`` is a regular file whose header matches ``meta`` and the file
    size; otherwise (size, the reason). Reads only the header (for ``cache ls``)."""
    try:
        fd, st = _open_regular(path)
    except _Missing:
        return 0, "has no array file (an interrupted or ongoing write)"
    except _Damaged as d:
        return 0, f"array file {d.why}"
    try:
        shape, dtype, _ = _npy_header(fd, st.st_size, path)
        _check_header(path, shape, dtype, meta)
    except _Damaged as d:
        return st.st_size, f"array file {d.why}"
    finally:
        os.close(fd)
    return st.st_size, None


# ---------------------------------------------------------------------------------------------------------------------
# Image identity
# ---------------------------------------------------------------------------------------------------------------------
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
        except _Missing:
            self.misses += 1
            return None
        except _Damaged as d:
            return self._corrupt(d.path, d.why)
        self.hits += 1
        return arr

    def _load(self, digest: str, key: dict[str, Any]) -> np.ndarray:
        npy, meta_path = self._paths(digest)
        try:
            st = os.lstat(npy.parent)
        except FileNotFoundError:
            raise _Missing() from None
        except OSError as exc:
            raise _Damaged(npy.parent, f"cannot be inspected ({exc.strerror or exc})") from None
        if not stat.S_ISDIR(st.st_mode):
            raise _Damaged(npy.parent, f"is {_kind(st.st_mode)}, not a cache folder (not followed)")
        meta = read_meta(meta_path)
        if meta.get("format") != FORMAT or _meta_kind(meta, digest) != "current":
            raise _Damaged(meta_path, "is not satbench cache metadata for this entry")
        # _meta_kind checked canonical_hash(stored key) == digest == canonical_hash(requested key): the stored key
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
                warn(f"feature cache folder {npy.parent} is {_kind(st.st_mode)}, not a cache folder; not caching into it")
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
        for item in _scandir(root, out):
            if _SHARD.match(item.name) and item.is_dir(follow_symlinks=False):
                self._scan_shard(Path(item.path), out)
            elif _PROBE_TMP.match(item.name) and item.is_file(follow_symlinks=False):
                out.temp.append(Path(item.path))
            else:
                why = "is a symbolic link (not followed)" if item.is_symlink() and _SHARD.match(item.name) else None
                out.foreign.append((Path(item.path), why))
        return out

    def _scan_shard(self, shard: Path, out: CacheScan) -> None:
        files: dict[str, dict[str, os.DirEntry]] = {}
        for item in _scandir(shard, out):
            m = _DIGEST.match(item.name)
            t = _ENTRY_TMP.match(item.name)
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
                kind = _meta_kind(meta, digest)
                if kind is None:
                    raise _Damaged(Path(js.path), "is not satbench cache metadata for this entry")
            except (_Missing, _Damaged) as exc:
                why = exc.why if isinstance(exc, _Damaged) else "vanished while listing"
                out.foreign.append((Path(js.path), why))
                if npy is not None:
                    out.foreign.append((Path(npy.path), None))
                continue
            npy_path = shard / f"{digest}.npy"
            size, why = _npy_consistent(npy_path, meta)
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
                gone += _unlink_regular(p, res)
            if gone:
                res.removed += 1
                res.files += gone
                touched.add(entry.path.parent)
        for p in s.temp:
            if _unlink_regular(p, res):
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


def _scandir(folder: Path, out: CacheScan) -> Iterable[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        out.foreign.append((folder, f"cannot be listed ({exc.strerror or exc})"))
        return []


def _unlink_regular(path: Path, res: ClearResult) -> int:
    """Unlink ``path`` if it is a regular file (never a link target, a folder or a special file); 1 when deleted."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return 0
        os.unlink(path)
        return 1
    except FileNotFoundError:
        return 0
    except OSError as exc:
        res.problems.append(f"{path}: {exc.strerror or exc}")
        return 0
