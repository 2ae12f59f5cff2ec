"""The one guard for commands whose feature extraction is not sharded yet (kNN, cached-linear, extract).

Under ``torchrun --nproc_per_node N`` (N > 1) every process would run the whole job and write its own record (cached-linear
would also record ``world_size: N`` for work one process did), so these commands refuse with one line instead. A later
change shards the extraction and replaces this guard.
"""

from __future__ import annotations

import os

from ..errors import SatbenchError


def require_single_process(what: str) -> None:
    """Raise :class:`SatbenchError` when this process is one of several (``WORLD_SIZE`` > 1, as torchrun sets it)."""
    raw = os.environ.get("WORLD_SIZE", "1").strip() or "1"
    try:
        world = int(raw)
    except ValueError:
        raise SatbenchError(f"WORLD_SIZE={raw!r} is not a whole number (torchrun sets it; unset it to run one process)") from None
    if world > 1:
        rank = os.environ.get("RANK", "?")
        raise SatbenchError(f"{what} runs as one process (its feature extraction is not sharded across processes yet), but "
                            f"this is rank {rank} of {world} (WORLD_SIZE={world}); run it without torchrun or with "
                            f"--nproc_per_node 1")
