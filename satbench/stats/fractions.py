"""Label fractions and few-shot subsets of the official train split: nested, class-stratified, seeded, hashed.

Definition (``labels`` = the train split's labels in split order, ``H`` = the train split's sha256, ``s`` = seed,
``d`` = draw):

* For each class ``c`` present, its images (positions in split order) are permuted by
  ``numpy.random.Generator(PCG64(SeedSequence(int(H, 16), spawn_key=(0xF4AC, s, d, c)))).permutation(...)``.
* A subset takes the first ``m_c`` images of every class's permutation, so for one ``(s, d)`` a smaller subset is always
  inside a larger one (1 % inside 10 % inside 100 %; 1 shot inside 5 shots inside 10 shots).
* Fraction ``f`` (0 < f <= 1): ``m_c = min(n_c, max(1, floor(f n_c + 1/2)))`` with ``f`` taken exactly as written in
  decimal (``Fraction(str(f))``): round half up per class, and **at least one image per class**, so every class is
  represented and the realised fraction can exceed ``f`` for tiny fractions (it is recorded as ``actual_fraction``).
* Shots ``N`` per class: ``m_c = min(N, n_c)``. A class with fewer than ``N`` images contributes all of them and is
  listed in ``short_classes`` (class index -> images available) -- recorded, never silent; ``strict=True`` refuses.
* The subset's hash: :func:`satbench.io.hashing.canonical_hash` of ``{"parent_split_sha256": H, "indices": [sorted positions]}``
  (0-based positions in the parent split's sample order).
* Draws ``d = 0 .. D-1`` give independent subsets of the same size; their results are averaged with their spread
  (:func:`satbench.stats.seeds.aggregate`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Sequence

import numpy as np

from satbench.errors import DataError
from satbench.io.hashing import canonical_hash

DOMAIN = 0xF4AC


@dataclass(frozen=True)
class Subset:
    """A train subset: sorted positions into the parent split, how it was drawn, and its hash."""

    kind: str  # "fraction" | "shots"
    value: float | int
    seed: int
    draw: int
    parent_sha256: str
    indices: np.ndarray
    per_class: dict[int, int]
    short_classes: dict[int, int] = field(default_factory=dict)
    n_parent: int = 0

    @property
    def sha256(self) -> str:
        return subset_sha256(self.parent_sha256, self.indices)

    def as_record(self) -> dict[str, Any]:
        """The subset as recorded in a run's dataset entry (``record["dataset"]["train_subset"]``)."""
        counts = list(self.per_class.values())
        return {"kind": self.kind, self.kind: self.value, "seed": self.seed, "draw": self.draw,
                "parent_split_sha256": self.parent_sha256, "sha256": self.sha256, "n": int(len(self.indices)),
                "n_parent": self.n_parent, "actual_fraction": len(self.indices) / max(1, self.n_parent),
                "per_class_min": min(counts), "per_class_max": max(counts),
                "short_classes": {str(k): v for k, v in sorted(self.short_classes.items())},
                "rule": ("per class min(n_c, max(1, floor(f n_c + 1/2)))" if self.kind == "fraction"
                         else "per class min(shots, n_c)") + "; first of a seeded per-class permutation (nested)"}


def subset_sha256(parent_sha256: str, indices: Sequence[int] | np.ndarray) -> str:
    """sha256 of the canonical JSON ``{"indices": sorted positions, "parent_split_sha256": parent}``."""
    return canonical_hash({"parent_split_sha256": parent_sha256, "indices": sorted(int(i) for i in indices)})


def _labels(labels: Sequence[int] | np.ndarray) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or y.size == 0:
        raise DataError(f"the train split must have at least one labelled image (got shape {y.shape})")
    if y.dtype.kind not in "iu" or (y < 0).any():
        raise DataError("train labels must be non-negative integers")
    return y.astype(np.int64)


def _check(parent_sha256: str, seed: int, draw: int) -> None:
    if not isinstance(parent_sha256, str) or len(parent_sha256) != 64:
        raise DataError(f"parent split sha256 must be 64 hex digits, got {parent_sha256!r}")
    int(parent_sha256, 16)
    for name, v in (("seed", seed), ("draw", draw)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise DataError(f"subset {name} must be a non-negative integer, got {v!r}")


def class_orders(labels: Sequence[int] | np.ndarray, parent_sha256: str, seed: int = 0,
                 draw: int = 0) -> dict[int, np.ndarray]:
    """Each present class's positions in a seeded random order (the order every subset takes its prefix of)."""
    y = _labels(labels)
    _check(parent_sha256, seed, draw)
    entropy = int(parent_sha256, 16)
    out = {}
    for c in np.unique(y).tolist():
        pos = np.flatnonzero(y == c)
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy, spawn_key=(DOMAIN, seed, draw, c))))
        out[int(c)] = rng.permutation(pos)
    return out


def fraction_count(n_c: int, fraction: float) -> int:
    """Images taken from a class of ``n_c`` for ``fraction``: ``min(n_c, max(1, floor(f n_c + 1/2)))``."""
    m = math.floor(Fraction(str(fraction)) * n_c + Fraction(1, 2))
    return min(n_c, max(1, m))


def fraction_subset(labels: Sequence[int] | np.ndarray, fraction: float, *, parent_sha256: str, seed: int = 0,
                    draw: int = 0) -> Subset:
    """The class-stratified ``fraction`` of the train split for ``(seed, draw)`` (see the module docstring)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise DataError(f"--train-fraction must be in (0, 1], got {fraction!r}")
    orders = class_orders(labels, parent_sha256, seed, draw)
    take = {c: fraction_count(len(o), fraction) for c, o in orders.items()}
    idx = np.sort(np.concatenate([o[:take[c]] for c, o in orders.items()]))
    return Subset("fraction", float(fraction), seed, draw, parent_sha256, idx, take, {}, len(np.asarray(labels)))


def shots_subset(labels: Sequence[int] | np.ndarray, shots: int, *, parent_sha256: str, seed: int = 0, draw: int = 0,
                 strict: bool = False) -> Subset:
    """``shots`` images per class for ``(seed, draw)``; classes with fewer images give all they have (recorded in
    ``short_classes``) unless ``strict`` (then a :class:`DataError` naming them)."""
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise DataError(f"--shots must be a positive integer, got {shots!r}")
    orders = class_orders(labels, parent_sha256, seed, draw)
    short = {c: len(o) for c, o in orders.items() if len(o) < shots}
    if short and strict:
        listed = ", ".join(f"class {c} has {n}" for c, n in sorted(short.items())[:5])
        raise DataError(f"--shots {shots}: {len(short)} class(es) have fewer train images ({listed})")
    take = {c: min(shots, len(o)) for c, o in orders.items()}
    idx = np.sort(np.concatenate([o[:take[c]] for c, o in orders.items()]))
    return Subset("shots", int(shots), seed, draw, parent_sha256, idx, take, short, len(np.asarray(labels)))


def subsets(labels: Sequence[int] | np.ndarray, *, parent_sha256: str, fractions: Sequence[float] = (),
            shots: Sequence[int] = (), seed: int = 0, draws: int = 1) -> list[Subset]:
    """Every requested subset for draws ``0 .. draws-1``: fractions first (ascending), then shots (ascending)."""
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise DataError(f"--draws must be a positive integer, got {draws!r}")
    out = []
    for d in range(draws):
        out += [fraction_subset(labels, f, parent_sha256=parent_sha256, seed=seed, draw=d) for f in sorted(fractions)]
        out += [shots_subset(labels, n, parent_sha256=parent_sha256, seed=seed, draw=d) for n in sorted(shots)]
    return out
