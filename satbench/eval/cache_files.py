"""The files of a feature-cache entry, read as untrusted: ``<digest>.json`` (metadata: format marker, full key, shape,
dtype, sha256 of the array file) and ``<digest>.npy``. Reads never follow a symbolic link, open regular files only
(no FIFO can block), cap the metadata's size and JSON nesting and check the ``.npy`` header against the file size
before anything is allocated; what fails is :class:`DamagedEntry` (with the reason), what is absent :class:`CacheMiss`.
"""


import errno
import hashlib
import io
import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from satbench.io.hashing import canonical_hash
from satbench.eval.cache_entries import CacheScan, ClearResult
from satbench.io.bounded import UntrustedFileError, open_regular_fd

FORMAT = "satbench.feature-cache/1"
META_MAX_BYTES = 256 * 1024
META_MAX_DEPTH = 32
NPY_MAX_HEADER = 64 * 1024


class CacheMiss(Exception):
    """No (complete) entry: a plain cache miss."""


class DamagedEntry(Exception):
    def __init__(self, path: Path, why: str) -> None:
        super().__init__(why)
        self.path, self.why = path, why


# ---------------------------------------------------------------------------------------------------------------------
# Bounded, non-following reads
# ---------------------------------------------------------------------------------------------------------------------
def open_entry_file(path: Path) -> tuple[int, os.stat_result]:
    """An fd of ``path`` opened by io.bounded's one opener without following a symbolic link or blocking on a FIFO;
    a regular file only. Absent is :class:`CacheMiss`, anything else :class:`DamagedEntry` with the reason."""
    try:
        return open_regular_fd(path, follow_symlinks=False)
    except FileNotFoundError:
        raise CacheMiss() from None
    except UntrustedFileError as exc:
        raise DamagedEntry(path, str(exc)) from None
    except OSError as exc:
        raise DamagedEntry(path, f"cannot be read ({exc.strerror or exc})") from None


def read_exactly(fd: int, size: int, offset: int = 0) -> bytearray:
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
    ``META_MAX_DEPTH`` levels, holding an object. Raises ``CacheMiss`` / ``DamagedEntry``."""
    fd, st = open_entry_file(path)
    try:
        if st.st_size > META_MAX_BYTES:
            raise DamagedEntry(path, f"is {st.st_size} bytes, more than the {META_MAX_BYTES} a cache metadata file has")
        data = bytes(read_exactly(fd, st.st_size))
    except OSError as exc:
        raise DamagedEntry(path, f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")
        if json_depth(text, META_MAX_DEPTH) > META_MAX_DEPTH:
            raise DamagedEntry(path, f"is JSON nested deeper than {META_MAX_DEPTH} levels")
        meta = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DamagedEntry(path, "is not readable JSON metadata") from None
    if not isinstance(meta, dict):
        raise DamagedEntry(path, "is not a JSON object")
    return meta


def meta_kind(meta: dict[str, Any], digest: str) -> Optional[str]:
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
        head = io.BytesIO(bytes(read_exactly(fd, min(size, NPY_MAX_HEADER + 16))))
        version = npf.read_magic(head)
        if version == (1, 0):
            shape, fortran, dtype = npf.read_array_header_1_0(head, max_header_size=NPY_MAX_HEADER)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = npf.read_array_header_2_0(head, max_header_size=NPY_MAX_HEADER)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise DamagedEntry(path, f"has no readable .npy header ({type(exc).__name__})") from None
    if fortran or dtype.hasobject:
        raise DamagedEntry(path, "is not a C-ordered numeric .npy array")
    shape = tuple(int(d) for d in shape)
    offset = head.tell()
    need = offset + int(np.prod(shape, dtype=object)) * dtype.itemsize
    if need != size:
        raise DamagedEntry(path, f"declares {list(shape)} {dtype} ({need} bytes with its header) but the file has "
                             f"{size} bytes")
    return shape, dtype, offset


def _check_header(path: Path, shape: tuple[int, ...], dtype: np.dtype, meta: dict[str, Any]) -> None:
    if list(shape) != meta.get("shape") or str(dtype) != meta.get("dtype"):
        raise DamagedEntry(path, f"holds {list(shape)} {dtype}, its metadata says {meta.get('shape')} {meta.get('dtype')}")


def read_npy(path: Path, meta: dict[str, Any]) -> np.ndarray:
    """The array of an entry, checked against its metadata: header shape / dtype, header + data size == file size
    (before allocating), sha256 of the file bytes, finite values. Raises ``CacheMiss`` / ``DamagedEntry``."""
    fd, st = open_entry_file(path)
    try:
        shape, dtype, offset = _npy_header(fd, st.st_size, path)
        _check_header(path, shape, dtype, meta)
        try:
            buf = read_exactly(fd, st.st_size)
        except (OSError, MemoryError) as exc:
            raise DamagedEntry(path, f"cannot be read ({getattr(exc, 'strerror', None) or type(exc).__name__})") from None
    finally:
        os.close(fd)
    if hashlib.sha256(buf).hexdigest() != meta["sha256"]:
        raise DamagedEntry(path, "does not have the sha256 its metadata records (replaced or altered)")
    arr = np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise DamagedEntry(path, "holds non-finite values")
    return arr


def npy_consistent(path: Path, meta: dict[str, Any]) -> tuple[int, Optional[str]]:
    """(file size, None) when the ``.npy`` at ``path`` is a regular file whose header matches ``meta`` and the file
    size; otherwise (size, the reason). Reads only the header (for ``cache ls``)."""
    try:
        fd, st = open_entry_file(path)
    except CacheMiss:
        return 0, "has no array file (an interrupted or ongoing write)"
    except DamagedEntry as d:
        return 0, f"array file {d.why}"
    try:
        shape, dtype, _ = _npy_header(fd, st.st_size, path)
        _check_header(path, shape, dtype, meta)
    except DamagedEntry as d:
        return st.st_size, f"array file {d.why}"
    finally:
        os.close(fd)
    return st.st_size, None


def scandir_sorted(folder: Path, out: CacheScan) -> Iterable[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        out.foreign.append((folder, f"cannot be listed ({exc.strerror or exc})"))
        return []


def unlink_regular(path: Path, res: ClearResult) -> int:
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
