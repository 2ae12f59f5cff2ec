"""Reading small files from a work folder satbench treats as untrusted: size-capped, regular files only.

A work dir may have been edited (or replaced) by someone else: a file there can be a FIFO (a plain ``open`` +
``read`` would block forever), a device, a symbolic link out of the folder, or gigabytes long.
:func:`read_small_file` opens with ``O_NONBLOCK`` (an open of a FIFO returns at once), checks on the open file
descriptor that it is a regular file, and reads at most ``cap`` bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

from satbench.errors import SatbenchError
from satbench.io.bounded import read_bytes_or_fail


def read_small_file(path: str | os.PathLike, cap: int, *, what: str, follow_symlinks: bool = True,
                    error: type[SatbenchError] = SatbenchError) -> bytes:
    """The bytes of the regular file ``path`` (at most ``cap``); anything else is a one-line ``error``.

    ``what`` names the file's role in messages (e.g. ``"the last_checkpoint pointer"``). With
    ``follow_symlinks=False`` a symbolic link is refused (``O_NOFOLLOW``). The reading itself is
    :func:`satbench.io.bounded.read_bytes_bounded`; this adds the path and the file's role to its reasons.
    """
    path = Path(path)
    return read_bytes_or_fail(path, cap, lead=f"{path}: {what}", error=error, follow_symlinks=follow_symlinks)
