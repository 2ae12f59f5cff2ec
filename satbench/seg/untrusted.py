"""Reading small files from a work folder satbench treats as untrusted: size-capped, regular files only.

A work dir may have been edited (or replaced) by someone else: a file there can be a FIFO (a plain ``open`` +
``read`` would block forever), a device, a symbolic link out of the folder, or gigabytes long.
:func:`read_small_file` opens with ``O_NONBLOCK`` (an open of a FIFO returns at once), checks on the open file
descriptor that it is a regular file, and reads at most ``cap`` bytes.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import SatbenchError


def read_small_file(path: str | os.PathLike, cap: int, *, what: str, follow_symlinks: bool = True,
                    error: type[SatbenchError] = SatbenchError) -> bytes:
    """The bytes of the regular file ``path`` (at most ``cap``); anything else is a one-line ``error``.

    ``what`` names the file's role in messages (e.g. ``"the last_checkpoint pointer"``). With
    ``follow_symlinks=False`` a symbolic link is refused (``O_NOFOLLOW``).
    """
    path = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
        if path.is_symlink():
            raise error(f"{path}: {what} is a symbolic link; satbench reads only the regular file it wrote")
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(f"{path}: {what} does not exist") from None
    except OSError as exc:
        raise error(f"{path}: cannot open {what} ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{path}: {what} is not a regular file")
        if st.st_size > cap:
            raise error(f"{path}: {what} is {st.st_size} bytes, more than the {cap} bytes satbench reads for it")
        chunks, total = [], 0
        while True:
            block = os.read(fd, min(1 << 16, cap + 1 - total))
            if not block:
                break
            chunks.append(block)
            total += len(block)
            if total > cap:
                raise error(f"{path}: {what} is more than the {cap} bytes satbench reads for it")
        return b"".join(chunks)
    finally:
        os.close(fd)
