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
import os
import re
import socket
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

from satbench.errors import ResultsError
from satbench.io.hashing import json_default


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
    data = (json.dumps(obj, indent=2, sort_keys=False, default=json_default) + "\n").encode()
    return atomic_write_bytes(path, data, exclusive=exclusive)


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically (a full disk is one line naming ``path``, not torch's internal text)."""
    import torch

    return atomic_write(path, lambda fh: torch.save(obj, fh))


