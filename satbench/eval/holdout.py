"""A seeded, stratified hold-out of a training split (the selection hold-out of cached-linear, the temperature
hold-out of linear / finetune): the indices, and the one-line refusal of a split it cannot be drawn from."""

from __future__ import annotations

import numpy as np

from satbench.errors import DataError


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(fit indices, hold-out indices): a seeded, per-class stratified split (scikit-learn)."""
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels)
    present = counts[counts > 0]
    if present.min() < 2:
        raise DataError(f"cannot hold out a stratified part of train: a class has only {int(present.min())} sample(s)")
    idx = np.arange(len(labels))
    fit, hold = train_test_split(idx, test_size=fraction, stratify=labels, random_state=seed)
    return np.sort(fit), np.sort(hold)


def check_holdout(labels: np.ndarray, fraction: float, seed: int, what: str) -> None:
    """Refuse, in one line, a train set whose stratified hold-out cannot be drawn (a class with one image, or fewer
    fit / hold-out images than classes), before any feature is extracted."""
    try:
        stratified_holdout(labels, fraction, seed)
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from None
    except ValueError as exc:  # scikit-learn: too few images for a stratified split of this size
        raise DataError(f"{what}: cannot hold out a stratified {fraction:g} of {len(labels)} images "
                        f"({str(exc).splitlines()[0]})") from None
