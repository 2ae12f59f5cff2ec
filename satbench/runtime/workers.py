"""Naming a data-loading worker that the kernel killed (what the out-of-memory killer does).

PyTorch reports a DataLoader worker that died from a signal as a bare ``RuntimeError`` ("DataLoader worker (pid
1234) is killed by signal: Killed." or "... exited unexpectedly"). :func:`worker_death` turns it into a
:class:`WorkerKilledError` whose one line says what happened and what to change; the CLI and the suite print that
instead of an internal error.
"""

from __future__ import annotations

import re
from typing import Optional

from satbench.errors import SatbenchError

_DEATH = re.compile(r"DataLoader worker \(pids?\(?s?\)? ?[\d, ]+\)? (?:is killed by signal: (?P<signal>[^.]+)|exited "
                    r"unexpectedly)")


class WorkerKilledError(SatbenchError):
    """A data-loading worker process died from a signal (usually the kernel's out-of-memory killer)."""

    exit_code = 3  # as an out-of-memory MemoryError


def worker_death(exc: BaseException) -> Optional[WorkerKilledError]:
    """The :class:`WorkerKilledError` for ``exc`` (or an exception it was raised from) when it reports a DataLoader
    worker killed by a signal, else None."""
    cur: Optional[BaseException] = exc
    for _ in range(16):
        if cur is None:
            return None
        if isinstance(cur, RuntimeError):
            m = _DEATH.search(str(cur))
            if m:
                what = m.group(0).rstrip(". ")
                sig = (m.group("signal") or "").strip()
                if sig == "Bus error":
                    why = "a bus error in a worker usually means the shared memory (/dev/shm) is too small"
                else:
                    why = "the kernel kills a process like this when memory runs out (the out-of-memory killer)"
                return WorkerKilledError(f"a data-loading worker was killed ({what}); {why}: rerun with fewer "
                                         f"--num-workers (0 loads in the main process) or a smaller --batch-size")
        cur = cur.__cause__ or cur.__context__
    return None
