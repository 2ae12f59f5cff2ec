"""Per-iteration schedules, exactly DINO's ``utils.cosine_scheduler`` and the per-epoch teacher temperature."""

from __future__ import annotations

import numpy as np


def cosine_scheduler(base_value: float, final_value: float, epochs: int, niter_per_ep: int,
                     warmup_epochs: int = 0, start_warmup_value: float = 0.0) -> np.ndarray:
    """DINO's cosine schedule: optional linear warm-up (``np.linspace``) then a half cosine to ``final_value``.

    Returns ``epochs * niter_per_ep`` values, one per iteration.
    """
    warmup_schedule = np.array([])
    warmup_iters = warmup_epochs * niter_per_ep
    if warmup_epochs > 0:
        warmup_schedule = np.linspace(start_warmup_value, base_value, warmup_iters)
    iters = np.arange(epochs * niter_per_ep - warmup_iters)
    schedule = final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * iters / len(iters)))
    schedule = np.concatenate((warmup_schedule, schedule))
    assert len(schedule) == epochs * niter_per_ep
    return schedule


def teacher_temp_schedule(warmup_teacher_temp: float, teacher_temp: float, warmup_epochs: int,
                          epochs: int) -> np.ndarray:
    """Teacher temperature per *epoch*: ``np.linspace(warmup, final, warmup_epochs)`` then constant."""
    return np.concatenate((
        np.linspace(warmup_teacher_temp, teacher_temp, warmup_epochs),
        np.ones(max(epochs - warmup_epochs, 0)) * teacher_temp,
    ))


def scaled_lr(base_lr: float, batch_size_per_gpu: int, world_size: int, accum_steps: int = 1) -> float:
    """The linear scaling rule: ``base_lr * effective_batch / 256``."""
    return base_lr * (batch_size_per_gpu * world_size * accum_steps) / 256.0
