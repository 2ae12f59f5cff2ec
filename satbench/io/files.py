"""File I/O satbench can trust: atomic writes (temp file in the same folder, fsync, rename; a reader never sees half a
file) and bounded reads of files satbench did not write (regular files only, size-capped, JSON nesting-bounded).

Temp files are named ``.<name>.sbtmp-<host>-<pid>-<random>.tmp``: the writer's host (:func:`host_tag`) and pid are in
the name, so the next write in that folder removes the temp files of writers that died (same host, pid no longer
running) and never touches a live writer's temp file, another host's, or a file of any other pattern. Temp files of the older pattern
``.<name>.<8 random chars>.tmp`` carry no writer; one is removed only when satbench writes ``<name>`` itself again in
that folder and the temp file has not been modified for :data:`LEGACY_TEMP_MIN_AGE_S` (a live writer modifies its temp
file continuously). A full disk (ENOSPC, EDQUOT, EFBIG) during any write -- including inside ``torch.save``, which
otherwise reports ``enforce fail at inline_container.cc`` -- is one :class:`~satbench.errors.ResultsError` line
``cannot write <file>: no space left on device``, and no partial or temporary file is left.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import re
import socket
import stat
import tempfile
import time
from pathlib import Path
from typing import IO, Any, Callable, Optional

from satbench.errors import ResultsError, SatbenchError

TEMP_TAG = "sbtmp"
#: ``.<name>.sbtmp-<host>-<pid>-<8 random chars from mkstemp>.tmp``
_TEMP_RE = re.compile(r"^\..*\.sbtmp-(?P<host>[A-Za-z0-9-]{1,32})-(?P<pid>[0-9]{1,10})-[a-z0-9_]{8}\.tmp$", re.S)
#: A temp file of the pre-0.x pattern ``.<name>.<8 random chars>.tmp`` is removed only after this long unmodified.
LEGACY_TEMP_MIN_AGE_S = 3600.0
_NAME_MAX = 255
_NO_SPACE = {errno.ENOSPC: "", errno.EFBIG: " (file too large for this file system or the file-size limit)"}
if hasattr(errno, "EDQUOT"):
    _NO_SPACE[errno.EDQUOT] = " (disk quota exceeded)"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------------------------------
# Temp files: recognisable names, stale ones cleaned
# ---------------------------------------------------------------------------------------------------------------------
_INIT_PID_NS = 0xEFFFFFFC  # inode of Linux's initial pid namespace (PROC_PID_INIT_INO)


def host_tag() -> str:
    """Where this process's pid means something, as it appears in temp file names: the host name (letters, digits,
    ``-``; at most 32 characters), plus ``-<pid namespace inode>`` inside a container with its own pid namespace (two
    containers with the same host name never take each other's live writers for dead ones)."""
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
    try:
        ns = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        ns = _INIT_PID_NS
    return host[:32] if ns == _INIT_PID_NS else f"{host[:23]}-{ns:x}"[:32]


def temp_prefix(name: str) -> str:
    """The ``mkstemp`` prefix of a temp file for ``name`` written by this process (fits the 255-byte name limit)."""
    tail = f".{TEMP_TAG}-{host_tag()}-{os.getpid()}-"
    room = _NAME_MAX - len(tail) - 1 - 8 - len(".tmp")
    stem = name.encode()[:room].decode(errors="ignore")
    return f".{stem}{tail}"


def pid_alive(pid: int) -> bool:
    """Whether a process with ``pid`` runs on this host (a process we may not signal counts as running; a zombie
    does not)."""
    if pid <= 0:
        return True  # not a real writer's pid: never treat as dead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    try:  # a killed process stays a zombie until its parent reaps it: it runs no more
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read(4096).rsplit(b")", 1)[-1].split()[:1] != [b"Z"]
    except OSError:
        return True


def _is_legacy_temp(name: str, target: str) -> bool:
    prefix = f".{target}."
    rest = name[len(prefix):] if name.startswith(prefix) else ""
    return len(rest) == 12 and rest.endswith(".tmp") and re.fullmatch(r"[a-z0-9_]{8}", rest[:8]) is not None


def clean_stale_temps(folder: str | os.PathLike, target: Optional[str] = None) -> list[Path]:
    """Remove satbench temp files in ``folder`` whose writer is dead; returns what was removed.

    Removed: ``.*.sbtmp-<this host>-<pid>-*.tmp`` regular files whose pid no longer runs (never this process's own), and
    legacy ``.<target>.XXXXXXXX.tmp`` regular files unmodified for :data:`LEGACY_TEMP_MIN_AGE_S`. Nothing else: not
    another host's temp files, not a live writer's, not symlinks, not files of any other pattern. Never raises.
    """
    removed: list[Path] = []
    me_host, me_pid, now = host_tag(), os.getpid(), time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        name = e.name
        if not (name.startswith(".") and name.endswith(".tmp")):
            continue
        m = _TEMP_RE.match(name)
        legacy = m is None and target is not None and _is_legacy_temp(name, target)
        if m is not None:
            pid = int(m["pid"])
            if m["host"] != me_host or pid == me_pid or pid_alive(pid):
                continue
        elif not legacy:
            continue
        try:
            st = os.lstat(e.path)
            if not stat.S_ISREG(st.st_mode):
                continue
            if legacy and now - st.st_mtime < LEGACY_TEMP_MIN_AGE_S:
                continue
            os.unlink(e.path)
            removed.append(Path(e.path))
        except OSError:
            continue
    return removed


# ---------------------------------------------------------------------------------------------------------------------
# Atomic writes
# ---------------------------------------------------------------------------------------------------------------------
class _TrackedFile:
    """The file object a writer gets: forwards everything, remembers the first OSError a write/flush raised (so a
    writer that wraps it, as ``torch.save`` does in a RuntimeError, cannot hide a full disk)."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh
        self.error: Optional[OSError] = None

    def write(self, data: Any) -> Any:
        try:
            return self._fh.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def flush(self) -> None:
        try:
            self._fh.flush()
        except OSError as exc:
            self.error = self.error or exc
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


def _os_error_in(exc: BaseException, tracked: Optional[_TrackedFile]) -> Optional[OSError]:
    """The OSError a failed write is about: the file's own (which a writer such as ``torch.save`` may have wrapped in a
    RuntimeError), ``exc`` itself, or a full-disk OSError in ``exc``'s cause/context chain; None for other errors."""
    if tracked is not None and tracked.error is not None:
        return tracked.error
    if isinstance(exc, OSError):
        return exc
    seen, cur = 0, exc.__cause__ or exc.__context__
    while cur is not None and seen < 20:
        if isinstance(cur, OSError) and cur.errno in _NO_SPACE:
            return cur
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return None


def write_error_message(path: str | os.PathLike, exc: OSError, verb: str = "cannot write") -> str:
    """``cannot write <path>: no space left on device`` for ENOSPC/EDQUOT/EFBIG, else ``...: <strerror>``."""
    if exc.errno in _NO_SPACE:
        return f"{verb} {path}: no space left on device{_NO_SPACE[exc.errno]}"
    return f"{verb} {path}: {exc.strerror or exc}"


def _discard(tmp: str) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def atomic_write(path: str | os.PathLike, writer: Callable[[io.BufferedWriter], None], *, exclusive: bool = False) -> Path:
    """Write ``path`` atomically through ``writer(fileobj)``.

    With ``exclusive=True`` the final name must not exist yet (a run never overwrites another's file);
    the check-and-publish is a hard link, which fails atomically if the name was taken meanwhile.
    Any OSError (also one wrapped by the writer, as ``torch.save`` does) becomes one :class:`ResultsError` line naming
    ``path``; the temp file is removed. Stale temp files of dead writers in the folder are removed first.
    """
    path = Path(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(write_error_message(folder, exc, "cannot write in")) from None
    clean_stale_temps(folder, path.name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=folder)
    except OSError as exc:
        if exc.errno in _NO_SPACE:
            raise ResultsError(write_error_message(path, exc)) from None
        raise ResultsError(f"cannot write in {folder}: {exc.strerror or exc}") from None
    tracked: Optional[_TrackedFile] = None
    try:
        with os.fdopen(fd, "wb") as fh:
            tracked = _TrackedFile(fh)
            writer(tracked)  # type: ignore[arg-type]
            tracked.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; published files get the usual permissions
        if exclusive:
            try:
                os.link(tmp, path)
            finally:
                _discard(tmp)
        else:
            os.replace(tmp, path)
        _fsync_dir(folder)
    except FileExistsError:
        _discard(tmp)
        raise
    except BaseException as exc:
        _discard(tmp)
        os_exc = _os_error_in(exc, tracked)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)) or os_exc is None:
            raise
        raise ResultsError(write_error_message(path, os_exc)) from None
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, exclusive: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda fh: fh.write(data), exclusive=exclusive)


def atomic_write_json(path: str | os.PathLike, obj: Any, *, exclusive: bool = False) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    data = (json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n").encode()
    return atomic_write_bytes(path, data, exclusive=exclusive)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically (a full disk is one line naming ``path``, not torch's internal text)."""
    import torch

    return atomic_write(path, lambda fh: torch.save(obj, fh))


def _json_default(obj: Any) -> Any:
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


# ---------------------------------------------------------------------------------------------------------------------
# Bounded reads of files satbench did not write
# ---------------------------------------------------------------------------------------------------------------------
class UntrustedFileError(SatbenchError):
    """A file that may not be read as asked: not a regular file, too big, nested too deeply, not valid JSON."""


def human_bytes(n: int) -> str:
    """``64 MiB``, ``97.7 KiB``; where three digits would hide the difference to a round size, the exact count too
    (``4 KiB (4,097 bytes)``), so that "larger than the 4 KiB allowed" never reads as a contradiction."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            if n % size == 0:
                return f"{n // size} {unit}"
            text = f"{n / size:.3g}"
            return f"{text} {unit}" if "." in text or n // size >= 100 else f"{text} {unit} ({n:,} bytes)"
    return f"{n} bytes"


def file_kind(mode: int) -> str:
    """``a FIFO (named pipe)``, ``a character device``... for an ``st_mode`` that is not a regular file."""
    for test, kind in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return kind
    return "not a regular file"


def read_bytes_bounded(path: str | os.PathLike, limit: int, *, follow_symlinks: bool = True) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``), read without ever blocking.

    A FIFO, device, socket or folder (and, with ``follow_symlinks=False``, a symbolic link) is refused without reading
    it; so is a file larger than ``limit``. Raises :class:`UntrustedFileError` (message: the reason, without the path)
    or OSError (missing, unreadable).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            raise UntrustedFileError("is a symbolic link (not followed)")
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise UntrustedFileError("is a symbolic link (not followed)") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UntrustedFileError(f"is {file_kind(st.st_mode)}, not a regular file (not read)")
        if st.st_size > limit:
            raise UntrustedFileError(f"is {human_bytes(st.st_size)}, larger than the {human_bytes(limit)} allowed")
        chunks, total = [], 0
        while total <= limit:
            block = os.read(fd, min(1 << 20, limit + 1 - total))
            if not block:
                break
            chunks.append(block)
            total += len(block)
        if total > limit:
            raise UntrustedFileError(f"is larger than the {human_bytes(limit)} allowed")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"number {text[:20]} overflows to {v}")
    return v


def json_depth(obj: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), computed without recursion."""
    depth, stack = 0, [(obj, 1)]
    while stack:
        node, d = stack.pop()
        if isinstance(node, dict):
            node = list(node.values())
        if isinstance(node, list):
            depth = max(depth, d)
            stack.extend((v, d + 1) for v in node if isinstance(v, (dict, list)))
    return depth


def parse_json_bounded(data: bytes, max_depth: int = 64) -> Any:
    """Parse JSON bytes strictly: UTF-8, finite numbers only (no NaN/Infinity, no overflow to inf), at most
    ``max_depth`` levels of nesting. Raises :class:`UntrustedFileError` naming the problem."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UntrustedFileError(f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise UntrustedFileError(f"is not readable JSON: nested deeper than {max_depth} levels") from None
    except ValueError as exc:  # JSONDecodeError, non-finite numbers, over-long integers
        raise UntrustedFileError(f"is not readable JSON ({str(exc).splitlines()[0][:160]})") from None
    if json_depth(obj) > max_depth:
        raise UntrustedFileError(f"is not readable JSON: nested deeper than {max_depth} levels")
    return obj


def open_regular(path: str | os.PathLike, mode: str = "rb", **kwargs: Any) -> IO[Any]:
    """``open(path, mode)`` for reading a file satbench did not write, without ever blocking: a FIFO, device, socket or
    folder is refused (:class:`UntrustedFileError` ``<path> is a FIFO, not a regular file``) before a byte is read. For streamed
    reads of files too large for :func:`read_bytes_bounded` (CSV lists, archives, checkpoints, images to hash)."""
    if "r" not in mode or any(c in mode for c in "wax+"):
        raise ValueError(f"open_regular is for reading, got mode {mode!r}")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UntrustedFileError(f"{path} is {file_kind(st.st_mode)}, not a regular file (not read)")
        os.set_blocking(fd, True)
        return open(fd, mode, closefd=True, **kwargs)
    except BaseException:
        os.close(fd)
        raise


def read_bytes_or_fail(path: str | os.PathLike, limit: int, *, lead: str, error: type[SatbenchError] = SatbenchError,
                       follow_symlinks: bool = True) -> bytes:
    """:func:`read_bytes_bounded`, every problem turned into one ``error`` line ``<lead> <reason>`` (``lead`` names
    the file and its role, e.g. ``"protocol /x/y.yaml"``)."""
    try:
        return read_bytes_bounded(path, limit, follow_symlinks=follow_symlinks)
    except UntrustedFileError as exc:
        raise error(f"{lead} {exc}") from None
    except FileNotFoundError:
        raise error(f"{lead} does not exist") from None
    except OSError as exc:
        raise error(f"{lead} is not readable ({exc.strerror or exc})") from None


def read_json_bounded(path: str | os.PathLike, *, what: str, limit: int, error: type[SatbenchError] = SatbenchError,
                      max_depth: int = 64) -> Any:
    """Read the JSON file ``path`` that satbench did not write: regular file only, at most ``limit`` bytes, bounded
    nesting, finite numbers. Any problem is one ``error`` line: ``<what> <path> <reason>``."""
    data = read_bytes_or_fail(path, limit, lead=f"{what} {path}", error=error)
    try:
        return parse_json_bounded(data, max_depth)
    except UntrustedFileError as exc:
        raise error(f"{what} {path} {exc}") from None


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
    data = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default).encode()
    return sha256_bytes(data)
