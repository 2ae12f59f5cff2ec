"""Data-parallel helpers for the training tasks: ``torchrun`` (gloo on CPU, nccl on GPU), shard samplers, reductions.

Run a task on N processes with ``torchrun --nproc_per_node N -m satbench.cli run --task linear ...``. Without the
``torchrun`` environment everything degrades to one process with no process group.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from ..errors import SatbenchError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: Optional[str] = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the ``torchrun`` process group when ``WORLD_SIZE`` > 1 (gloo on CPU, nccl on CUDA); else a 1-process info."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_available():
        raise SatbenchError("WORLD_SIZE > 1 but torch.distributed is not available in this build")
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local, backend=backend)


def local_device(device: torch.device, info: DistInfo) -> torch.device:
    """On CUDA with several processes, each process uses ``cuda:LOCAL_RANK``."""
    if device.type == "cuda" and info.enabled:
        return torch.device("cuda", info.local_rank)
    return device


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``t`` over processes (in place; a no-op for one process)."""
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def broadcast_object(obj: object, info: DistInfo, src: int = 0) -> object:
    """Rank ``src``'s ``obj`` on every process."""
    if not info.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


class EpochShuffleSampler(Sampler[int]):
    """``DistributedSampler`` semantics (seeded permutation per epoch, padded to a multiple of the world size, rank
    ``r`` takes ``indices[r::world]``) with the permutation depending only on ``(seed, epoch)``: one process with
    batch B sees, batch by batch, the same samples as W processes with batch B / W each.
    """

    def __init__(self, n: int, info: DistInfo, seed: int = 0, shuffle: bool = True) -> None:
        self.n, self.info, self.seed, self.shuffle = n, info, seed, shuffle
        self.epoch = 0
        self.per_rank = -(-n // info.world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            idx = torch.randperm(self.n, generator=g).tolist()
        else:
            idx = list(range(self.n))
        total = self.per_rank * self.info.world_size
        idx += idx[: total - len(idx)]
        return idx[self.info.rank::self.info.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def __len__(self) -> int:
        return self.per_rank


class ShardSampler(Sampler[int]):
    """Evaluation shards without padding: rank ``r`` takes ``r, r + W, ...``; sums over ranks count every sample once."""

    def __init__(self, n: int, info: DistInfo) -> None:
        self.idx = list(range(info.rank, n, info.world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.idx)

    def __len__(self) -> int:
        return len(self.idx)
