"""Labelled image datasets for training and evaluating probes: per-sample seeded augmentation, the DataLoader."""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from satbench.data.images import read_rgb


def _mix(*parts: int) -> int:
    """A 63-bit seed from integers (splitmix-style), stable across processes and runs."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h ^= (int(p) + 0x9E3779B97F4A7C15 + ((h << 6) & 0xFFFFFFFFFFFFFFFF) + (h >> 2)) & 0xFFFFFFFFFFFFFFFF
        h = (h * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    return h & 0x7FFFFFFFFFFFFFFF


class LabeledImages(Dataset):
    """``(tensor in [0, 1], label)`` for items with ``.path`` and ``.label`` (scene ``Sample``s or fMoW rows).

    With ``seed`` set, sample ``i``'s random transform in epoch ``e`` draws from a generator seeded by
    ``(seed, e, i)``: augmentation is independent of batch order, worker count, world size and resumption.
    """

    def __init__(self, items: Sequence[Any], transform: Callable[[Any], Tensor], seed: Optional[int] = None) -> None:
        self.items = items
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        item = self.items[i]
        img = read_rgb(item.path)
        if self.seed is None:
            return self.transform(img), int(item.label)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_mix(self.seed, self.epoch, i))
            return self.transform(img), int(item.label)


def _loader(ds: Dataset, sampler: Any, batch_size: int, num_workers: int, device: torch.device) -> DataLoader:
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=False,
                      pin_memory=device.type == "cuda", persistent_workers=False,
                      multiprocessing_context="fork" if num_workers > 0 else None)


