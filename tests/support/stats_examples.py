"""Fixed examples shared by the statistics tests."""

from __future__ import annotations

import hashlib
import math

import numpy as np

H = hashlib.sha256(b"val split of a fixed example").hexdigest()
H2 = hashlib.sha256(b"another split").hexdigest()


def independent_indices(split_sha256: str, seed: int, n: int, resamples: int) -> np.ndarray:
    """The resample matrix written out from the documented definition (not through satbench's generator code)."""
    rows = []
    for j in range(math.ceil(resamples / 64)):
        ss = np.random.SeedSequence(int(split_sha256, 16), spawn_key=(0xB007, seed, j))
        rows.append(np.random.Generator(np.random.PCG64(ss)).integers(0, n, size=(64, n), dtype=np.int64))
    return np.concatenate(rows)[:resamples]


def fixed_example(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(123)
    y = rng.integers(0, 5, n)
    pred = np.where(rng.random(n) < 0.7, y, (y + 1) % 5)
    return y, pred


def miou_by_hand(cm: np.ndarray) -> float:
    ious = []
    for c in range(cm.shape[0]):
        tp = cm[c, c]
        union = cm[c, :].sum() + cm[:, c].sum() - tp
        if union > 0:
            ious.append(tp / union)
    return 100 * float(np.mean(ious))
