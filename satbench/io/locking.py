"""One run per output folder: an exclusive, non-blocking OS lock on ``<folder>/.satbench.lock`` for the run's lifetime.

``with output_lock(folder, "pretrain --output"):`` (or the :func:`holds_output_lock` decorator) takes
``fcntl.flock(LOCK_EX | LOCK_NB)`` on the lock file and writes the owner's pid, host, start time and command into it.
A second run on the same folder fails at once with one :class:`OutputLockedError` line naming the folder and the run
that holds it. The kernel releases the lock when its holder dies, however it dies; a lock file whose lock is free but
which still names an owner (the owner was killed) is a *stale* lock: it is taken over with one warning naming the dead
run. On a clean exit the lock file is removed (and the folder too, if the run created it and left it empty).

Under ``torchrun`` only the job's rank-0 process (local rank 0 of node 0) takes the lock; the other ranks never try.
If rank 0 is refused it exits non-zero and torchrun's agent ends the other ranks (they are waiting for rank 0 in the
rendezvous or a collective), so nothing hangs.

Locks are re-entrant within a process (a nested lock on a folder this process already holds is a no-op) and, as
``flock`` locks, advisory: they keep satbench runs apart, not other programs. On NFS, flock is emulated with POSIX
locks by Linux clients, which work across hosts.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import inspect
import json
import os
import shlex
import socket
import stat
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, TypeVar, Union

from satbench.runtime.ranks import is_job_main  # noqa: F401 (re-exported)
from satbench.errors import SatbenchError
from satbench.io.bounded import file_kind
from satbench.io.atomic import host_tag, pid_alive

LOCK_NAME = ".satbench.lock"
#: When the lock is held but the recorded owner is dead on this host (its forked data-loader workers still hold the
#: inherited lock while they notice their parent died), wait this long for them before giving up.
ORPHAN_GRACE_S = 15.0
_MAX_INFO = 4096

_HELD: dict[str, "OutputLock"] = {}


class OutputLockedError(SatbenchError):
    """The output folder is locked by another satbench run (or cannot be locked)."""


def _command() -> str:
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("cli.py", "__main__.py", "satbench"):
        argv = ["satbench", *argv[1:]]
    text = shlex.join(argv) if argv else "python"
    return text if len(text) <= 300 else text[:297] + "..."


def _one_line(value: Any, limit: int = 300) -> str:
    text = "".join(c if c.isprintable() else " " for c in str(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read_info(fd: int) -> Optional[dict[str, Any]]:
    """The owner recorded in an open lock file: a dict (possibly ``{"unreadable": ...}``) or None when empty."""
    try:
        raw = os.pread(fd, _MAX_INFO + 1, 0)
    except OSError:
        return {"unreadable": "cannot read it"}
    if not raw.strip():
        return None
    try:
        info = json.loads(raw[:_MAX_INFO].decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {"unreadable": "content is not a satbench lock record"}
    if not isinstance(info, dict):
        return {"unreadable": "content is not a satbench lock record"}
    return info


def _pid_of(info: Optional[dict[str, Any]]) -> Optional[int]:
    pid = (info or {}).get("pid")
    return pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None


def describe_owner(info: Optional[dict[str, Any]]) -> str:
    """``pid 123 on host vm since 2026-01-01T10:00:00Z (satbench pretrain ...)`` from a lock record."""
    if info is None:
        return "a run that has not recorded itself yet"
    if "unreadable" in info:
        return f"an unknown owner ({info['unreadable']})"
    parts = [f"pid {_pid_of(info) or '?'} on host {_one_line(info.get('host', '?'), 80)}"]
    if info.get("started"):
        parts.append(f"since {_one_line(info['started'], 40)}")
    text = " ".join(parts)
    if info.get("command"):
        text += f" ({_one_line(info['command'])})"
    return text


def _dead_here(info: Optional[dict[str, Any]]) -> bool:
    """The recorded owner ran on this host and is no longer running."""
    pid = _pid_of(info)
    if pid is None or pid == os.getpid():
        return False
    here = info["host_tag"] == host_tag() if "host_tag" in info else info.get("host") == socket.gethostname()
    return here and not pid_alive(pid)


class OutputLock:
    """An exclusive lock on ``<folder>/.satbench.lock``; use as a context manager or call acquire()/release()."""

    def __init__(self, folder: Union[str, os.PathLike], purpose: str = "") -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.purpose = purpose
        self.fd: Optional[int] = None
        self.stale: Optional[dict[str, Any]] = None  #: the dead owner whose lock was taken over, if any
        self._created: list[Path] = []
        self._key = ""
        self._reentered = False
        self._owner_pid = 0

    @property
    def held(self) -> bool:
        return self.fd is not None

    # -- acquire ------------------------------------------------------------------------------------------------------
    def _mkdirs(self) -> None:
        missing = []
        p = self.folder
        while not p.exists() and not p.is_symlink() and p != p.parent:
            missing.append(p)
            p = p.parent
        if self.folder.exists() and not self.folder.is_dir():
            raise OutputLockedError(f"output folder {self.folder} exists and is not a folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputLockedError(f"cannot create output folder {self.folder}: {exc.strerror or exc}") from None
        self._created = list(missing)  # deepest first

    def _open(self) -> int:
        flags = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise OutputLockedError(f"cannot lock output folder {self.folder}: {self.path} is a symbolic link "
                                        f"(satbench's lock file must be a regular file; remove it)") from None
            raise OutputLockedError(f"cannot lock output folder {self.folder}: {exc.strerror or exc} "
                                    f"({self.path})") from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise OutputLockedError(f"cannot lock output folder {self.folder}: {self.path} is {file_kind(st.st_mode)}, "
                                    f"not satbench's lock file (remove it)")
        if st.st_nlink > 1:  # writing the owner into it would write into every other name of the file
            os.close(fd)
            raise OutputLockedError(f"cannot lock output folder {self.folder}: {self.path} has {st.st_nlink} hard links, "
                                    f"so it is not satbench's lock file (remove it)")
        return fd

    def acquire(self) -> "OutputLock":
        """Take the lock (rank 0 only; a no-op elsewhere and when this process already holds it)."""
        if self.held or self._reentered or not is_job_main():
            return self
        self._mkdirs()
        self._key = os.path.realpath(self.folder)
        if self._key in _HELD and _HELD[self._key].held:
            self._reentered = True
            return self
        deadline = time.monotonic() + ORPHAN_GRACE_S
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                info = _read_info(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise OutputLockedError(f"cannot lock output folder {self.folder}: {exc.strerror or exc}") from None
                if _dead_here(info) and time.monotonic() < deadline:
                    time.sleep(0.2)  # the owner died; its forked workers still hold the lock for a moment
                    continue
                self._release_dirs()
                if _dead_here(info):
                    raise OutputLockedError(
                        f"output folder {self.folder} is still locked by processes left over from satbench run "
                        f"{describe_owner(info)}, which is no longer running; wait for them to exit or end them")
                raise OutputLockedError(f"output folder {self.folder} is in use by another satbench run: "
                                        f"{describe_owner(info)}; wait for it to finish or choose another folder")
            try:
                same = os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
            except OSError:
                same = False
            if same:
                break
            os.close(fd)  # the previous owner removed the file between our open and lock: lock the new one
        previous = _read_info(fd)
        if previous is not None and previous.get("satbench_lock") != 1:  # never overwrite a file satbench did not write
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            self._release_dirs()
            raise OutputLockedError(f"cannot lock output folder {self.folder}: {self.path} exists and is not a satbench "
                                    f"lock file ({previous.get('unreadable', 'no satbench_lock marker')}); remove it")
        self.fd = fd
        self._owner_pid = os.getpid()
        if previous is not None and _pid_of(previous) != os.getpid():
            self.stale = previous
            why = ("which is no longer running" if _dead_here(previous)
                   else "which no longer holds it" if _pid_of(previous) else "")
            print(f"satbench: warning: output folder {self.folder}: taking over the stale lock of satbench run "
                  f"{describe_owner(previous)}{', ' + why if why else ''}", file=sys.stderr)
        info = {"satbench_lock": 1, "pid": os.getpid(), "host": socket.gethostname(), "host_tag": host_tag(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": _command(),
                "purpose": self.purpose}
        data = json.dumps(info).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        _HELD[self._key] = self
        return self

    # -- release ------------------------------------------------------------------------------------------------------
    def _release_dirs(self) -> None:
        for d in self._created:  # deepest first; only folders this run created, only when empty
            try:
                os.rmdir(d)
            except OSError:
                break
        self._created = []

    def release(self) -> None:
        """Remove the lock file and drop the lock (and the folder, if this run created it and it is empty)."""
        if self._reentered:
            self._reentered = False
            return
        fd, self.fd = self.fd, None
        if fd is None:
            return
        if os.getpid() != self._owner_pid:  # a forked child (e.g. a data-loader worker) never releases its parent's lock
            return
        if _HELD.get(self._key) is self:
            del _HELD[self._key]
        try:
            if os.stat(self.path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
                os.unlink(self.path)
        except OSError:
            pass
        os.close(fd)
        self._release_dirs()

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:  # a safety net; acquire/release pairs are explicit
        try:
            if self.fd is not None:
                self.release()
        except Exception:  # noqa: BLE001 - never raise from a finaliser
            pass


def output_lock(folder: Union[str, os.PathLike], purpose: str = "") -> OutputLock:
    """A lock on ``folder`` for ``with output_lock(folder, purpose): ...`` (see the module docstring)."""
    return OutputLock(folder, purpose)


F = TypeVar("F", bound=Callable[..., Any])


def holds_output_lock(folder: Union[str, Callable[[Mapping[str, Any]], Any]], purpose: str = "") -> Callable[[F], F]:
    """Decorator: hold :func:`output_lock` on a folder for the whole call.

    ``folder`` is the name of the parameter holding it, or a function of the bound arguments (defaults applied)
    returning it; None means no folder, no lock.
    """
    def deco(fn: F) -> F:
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            target = bound.arguments.get(folder) if isinstance(folder, str) else folder(bound.arguments)
            if target is None:
                return fn(*args, **kwargs)
            with output_lock(target, purpose):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco
