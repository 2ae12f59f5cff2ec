"""Bounded reads of files satbench did not write: regular files only (no FIFO, device or folder is opened), size-capped,
JSON nesting-bounded and strict (no NaN/Infinity constants). One home for every untrusted-file read."""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from typing import IO, Any

from satbench.errors import SatbenchError

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


def open_regular_fd(path: str | os.PathLike, *, follow_symlinks: bool = True) -> tuple[int, os.stat_result]:
    """A non-blocking fd of the regular file ``path`` and its ``fstat``; the one opener of untrusted files.

    A FIFO, device, socket or folder is refused before a byte is read (so nothing can block), and with
    ``follow_symlinks=False`` so is a symbolic link (``O_NOFOLLOW``, checked again after opening). Raises
    :class:`UntrustedFileError` (message: the reason, without the path) or OSError (missing, unreadable).
    The caller closes the fd; positional reads (``os.preadv``) and ``os.read`` both work on it.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            raise UntrustedFileError("is a symbolic link (not followed)" if stat.S_ISLNK(st.st_mode)
                                     else f"is {file_kind(st.st_mode)}, not a regular file (not read)")
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise UntrustedFileError("is a symbolic link (not followed)") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # also a file swapped between lstat and open
            raise UntrustedFileError(f"is {file_kind(st.st_mode)}, not a regular file (not read)")
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_bytes_bounded(path: str | os.PathLike, limit: int, *, follow_symlinks: bool = True) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit``), read without ever blocking.

    A FIFO, device, socket or folder (and, with ``follow_symlinks=False``, a symbolic link) is refused without reading
    it; so is a file larger than ``limit``. Raises :class:`UntrustedFileError` (message: the reason, without the path)
    or OSError (missing, unreadable).
    """
    fd, st = open_regular_fd(path, follow_symlinks=follow_symlinks)
    try:
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
    try:
        fd, _ = open_regular_fd(path)
    except UntrustedFileError as exc:
        raise UntrustedFileError(f"{path} {exc}") from None
    try:
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

