"""The one home of torchrun's environment (``WORLD_SIZE``, ``RANK``): read here, checked here, without importing torch
(the CLI and the results writer ask "am I rank 0?" before any model is loaded)."""

from __future__ import annotations

import os

from satbench.errors import SatbenchError


def torchrun_world_size() -> int:
    """``WORLD_SIZE`` of the torchrun environment (1 outside torchrun)."""
    raw = os.environ.get("WORLD_SIZE", "1").strip() or "1"
    try:
        return max(1, int(raw))
    except ValueError:
        raise SatbenchError(f"WORLD_SIZE={raw!r} is not a whole number (torchrun sets it; unset it to run one "
                            f"process)") from None


def torchrun_rank() -> int:
    """``RANK`` of the torchrun environment (0 outside torchrun)."""
    raw = os.environ.get("RANK", "0").strip() or "0"
    try:
        return int(raw)
    except ValueError:
        raise SatbenchError(f"RANK={raw!r} is not a whole number (torchrun sets it; unset it to run one "
                            f"process)") from None


def is_job_main() -> bool:
    """True in the process that may own output folders and write records: rank 0 of a torchrun job, or a plain
    process (a malformed ``RANK`` is reported by :func:`torchrun_rank` where the run starts; here it counts as 0)."""
    try:
        return torchrun_rank() == 0
    except SatbenchError:
        return True
