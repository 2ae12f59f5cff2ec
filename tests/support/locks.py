"""Another process holding satbench's output lock on a folder (locks are re-entrant within one process)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from .paths import REPO


@contextlib.contextmanager
def lock_holder(folder: Path, **env: str) -> Iterator[int]:
    """Another process holding the output lock on ``folder`` until the block ends; yields its pid."""
    code = ("import sys\nfrom satbench.io.locking import output_lock\nl = output_lock(sys.argv[1], 'test holder').acquire()\n"
            "print('ready', flush=True)\nsys.stdin.read()\nl.release()\n")
    environ = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "SATBENCH_OFFLINE": "1",
               "PYTHONUNBUFFERED": "1", **env}
    p = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True, env=environ)
    try:
        assert p.stdout.readline().strip() == "ready"
        yield p.pid
    finally:
        p.stdin.close()
        p.wait(timeout=30)
