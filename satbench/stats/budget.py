"""Bounds on the statistics options by what they cost, checked before any work.

The bootstrap keeps ``resamples x evaluations`` float64 samples (an evaluation: one scale x k x metric of kNN, one
head of a probe) and draws ``resamples x n_val`` image indices. Measured on 2 cores: 1e7 resamples of 84 images took
16 s and 1.1 GB; 1e9 would run for half an hour with no output. Beyond :data:`MAX_RESAMPLES` the percentile interval no
longer moves (its Monte Carlo error at 1e6 resamples is below 0.01 points), so more is refused, as are more than
:data:`MAX_REPEATS` seeds or subset draws (each one a full training or search) and shot counts above
:data:`MAX_SHOTS` per class.
"""

from __future__ import annotations

from typing import Optional

from satbench.errors import SatbenchError

MAX_RESAMPLES = 1_000_000
#: bootstrap samples kept in memory (8 bytes each): 2 GiB
MAX_SAMPLE_BYTES = 2 << 30
#: image indices drawn in all (about 5e7 per second on one core: ~3 minutes)
MAX_INDEX_DRAWS = 10_000_000_000
MAX_REPEATS = 100
MAX_SHOTS = 100_000


def check_resamples(resamples: int, n_val: Optional[int] = None, evaluations: int = 1, flag: str = "--resamples") -> None:
    """Refuse a resample count that cannot finish in reasonable time and memory, naming the limit."""
    if resamples > MAX_RESAMPLES:
        raise SatbenchError(f"{flag} {resamples:,} is more than {MAX_RESAMPLES:,} (beyond that the 95% interval no "
                            f"longer changes; the cost grows with every resample)")
    if resamples * max(1, evaluations) * 8 > MAX_SAMPLE_BYTES:
        most = MAX_SAMPLE_BYTES // (8 * max(1, evaluations))
        raise SatbenchError(f"{flag} {resamples:,} x {evaluations} evaluations would keep "
                            f"{resamples * evaluations * 8 / 2**30:.1f} GiB of bootstrap samples; at most {most:,} "
                            f"resamples fit the {MAX_SAMPLE_BYTES >> 30} GiB bound")
    if n_val is not None and resamples * n_val > MAX_INDEX_DRAWS:
        most = MAX_INDEX_DRAWS // max(1, n_val)
        raise SatbenchError(f"{flag} {resamples:,} on {n_val:,} val images draws {resamples * n_val:.2g} indices; at "
                            f"most {most:,} resamples finish in minutes ({MAX_INDEX_DRAWS:.0e} draws)")


def check_repeats(count: int, flag: str) -> None:
    """``--seeds`` (how many) and ``--draws``: each repeat is a full run."""
    if count > MAX_REPEATS:
        raise SatbenchError(f"{flag}: {count:,} repeats is more than {MAX_REPEATS} (each one is a full training or "
                            f"search)")


def check_shots(shots: list[int]) -> None:
    """``--shots``: train images per class."""
    big = [s for s in shots if s > MAX_SHOTS]
    if big:
        raise SatbenchError(f"--shots {big[0]:,} is more than {MAX_SHOTS:,} images per class (use --train-fraction "
                            f"for large subsets)")
