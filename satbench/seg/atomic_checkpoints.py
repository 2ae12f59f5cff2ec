"""Make mmengine's local checkpoint writes atomic (temp file, fsync, rename), as every other satbench write is.

mmengine 0.10.7 saves ``iter_N.pth`` through ``LocalBackend.put``, a plain ``open(path, 'wb').write``: a run killed
while saving leaves a half-written file under the final name. :func:`install` replaces that method with
:func:`satbench.io.atomic.atomic_write_bytes`, so a checkpoint file either is complete or does not exist; the
``last_checkpoint`` pointer (written by mmengine after the checkpoint) then always names a complete file. Installed
when :mod:`satbench.seg` is imported, so runs driven by mmseg's own ``tools/train.py`` get it too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

_INSTALLED = False


def install() -> None:
    """Patch ``mmengine.fileio.backends.LocalBackend.put`` (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from mmengine.fileio.backends.local_backend import LocalBackend

    from satbench.io.atomic import atomic_write_bytes

    def put(self: LocalBackend, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(filepath, obj)  # creates the folder, writes a temp file, fsyncs, renames

    put.__doc__ = "Write bytes to ``filepath`` atomically (satbench)."
    LocalBackend.put = put  # type: ignore[method-assign]
    _INSTALLED = True
