"""Make mmengine's local checkpoint writes atomic (temp file, fsync, rename), as every other satbench write is.

mmengine 0.10.7 writes two files per saved iteration, both with a plain ``open(path, 'w')``:

* ``iter_N.pth`` through ``LocalBackend.put``;
* the ``last_checkpoint`` pointer, in ``CheckpointHook._save_checkpoint_with_step`` (``open(save_file, 'w')``).

A run killed while writing either leaves a truncated file under the final name: a half checkpoint, or an empty
pointer that ``--resume`` then refuses. :func:`install` replaces ``LocalBackend.put`` with
:func:`satbench.io.atomic.atomic_write_bytes` and gives the checkpoint hook's module an ``open`` whose text writes of
``last_checkpoint`` go through the same atomic write (every other ``open`` there is the builtin, unchanged). Both
files then either are complete or keep their previous content. Installed when :mod:`satbench.seg` is imported, so
runs driven by mmseg's own ``tools/train.py`` get it too.
"""

from __future__ import annotations

import builtins
import io
import os
from pathlib import Path
from typing import Any, Union

POINTER_NAME = "last_checkpoint"
_INSTALLED = False


class AtomicTextFile(io.StringIO):
    """A text file opened for writing that lands on disk atomically when closed without an error."""

    def __init__(self, path: Union[str, os.PathLike], encoding: str = "utf-8") -> None:
        super().__init__()
        self._path, self._encoding = Path(path), encoding

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
        super().__exit__(exc_type, exc, tb)

    def commit(self) -> None:
        """Write the buffered text to the target (temp file, fsync, rename)."""
        from satbench.io.atomic import atomic_write_bytes

        atomic_write_bytes(self._path, self.getvalue().encode(self._encoding))


def pointer_safe_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
    """``open`` for mmengine's checkpoint hook: a text write of ``last_checkpoint`` is atomic, all else is builtin."""
    if isinstance(file, (str, os.PathLike)) and Path(file).name == POINTER_NAME and mode in ("w", "wt"):
        return AtomicTextFile(file, encoding=kwargs.get("encoding") or "utf-8")
    return builtins.open(file, mode, *args, **kwargs)


def install() -> None:
    """Patch ``LocalBackend.put`` and the checkpoint hook's pointer write (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from mmengine.fileio.backends.local_backend import LocalBackend
    from mmengine.hooks import checkpoint_hook

    from satbench.io.atomic import atomic_write_bytes

    def put(self: LocalBackend, obj: bytes, filepath: Union[str, Path]) -> None:
        atomic_write_bytes(filepath, obj)  # creates the folder, writes a temp file, fsyncs, renames

    put.__doc__ = "Write bytes to ``filepath`` atomically (satbench)."
    LocalBackend.put = put  # type: ignore[method-assign]
    checkpoint_hook.open = pointer_safe_open  # type: ignore[attr-defined]  # module globals shadow the builtin
    _INSTALLED = True
