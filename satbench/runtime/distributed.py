"""The one home of data-parallel plumbing: ``torchrun`` (``env://`` rendezvous, multi-node), gloo on CPU, nccl on
CUDA, shard samplers and reductions. Without ``WORLD_SIZE > 1`` everything is one process with no process group.

Used by pretraining, linear probing / fine-tuning and segmentation (mmengine uses the gloo group the segmentation
runner joins here on CPU).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import Sampler

from satbench.runtime.device import parse_device
from satbench.runtime.ranks import torchrun_rank, torchrun_world_size  # noqa: F401 (re-exported)
from satbench.errors import SatbenchError


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job (rank, world size, local rank, backend, its device)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: Optional[str] = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1 and self.backend is not None

    def all_reduce_sum(self, t: Tensor) -> Tensor:
        """Sum ``t`` over processes in place (a no-op for one process)."""
        if self.enabled:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def gather_object(self, obj: Any, dst: int = 0) -> Optional[list[Any]]:
        """Every process's ``obj`` in rank order on rank ``dst`` (None on the others)."""
        if not self.enabled:
            return [obj]
        out: Optional[list[Any]] = [None] * self.world_size if self.rank == dst else None
        dist.gather_object(obj, out, dst=dst)
        return out

    def broadcast_object(self, obj: Any, src: int = 0) -> Any:
        """Rank ``src``'s ``obj`` on every process."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=src)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


def join_process_group(backend: str) -> None:
    """Join the torchrun job's process group (``env://`` rendezvous, ``WORLD_SIZE`` and ``RANK`` from the
    environment) over ``backend`` (``gloo``, ``nccl``), unless this process has already joined one."""
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", world_size=torchrun_world_size(),
                                rank=torchrun_rank())


def require_single_process(what: str) -> None:
    """Raise :class:`SatbenchError` when this process is one of several (``WORLD_SIZE`` > 1, as torchrun sets it)."""
    world = torchrun_world_size()
    if world > 1:
        rank = torchrun_rank()
        raise SatbenchError(f"{what} runs as one process (its feature extraction is not sharded across processes yet), but "
                            f"this is rank {rank} of {world} (WORLD_SIZE={world}); run it without torchrun or with "
                            f"--nproc_per_node 1")


def init_distributed(device: Optional[str | torch.device] = "auto") -> DistInfo:
    """Join the torchrun process group when ``WORLD_SIZE > 1`` (nccl for CUDA, gloo for CPU); else one process.

    On CUDA each process uses ``cuda:LOCAL_RANK`` (unless a device index was given).
    """
    dev = parse_device(device)
    world = torchrun_world_size()
    rank = torchrun_rank()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local if world > 1 else torch.cuda.current_device())
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world <= 1:
        return DistInfo(device=dev)
    if not dist.is_available():
        raise SatbenchError("WORLD_SIZE > 1 but torch.distributed is not available in this build")
    backend = "nccl" if dev.type == "cuda" else "gloo"
    join_process_group(backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local, backend=backend, device=dev)


def local_device(device: torch.device, info: DistInfo) -> torch.device:
    """On CUDA with several processes, each process uses ``cuda:LOCAL_RANK``."""
    if device.type == "cuda" and info.world_size > 1:
        return torch.device("cuda", info.local_rank)
    return device


def all_reduce_sum(t: Tensor, info: DistInfo) -> Tensor:
    """Sum ``t`` over processes (in place; a no-op for one process)."""
    return info.all_reduce_sum(t)


def barrier(info: DistInfo) -> None:
    info.barrier()


def broadcast_object(obj: object, info: DistInfo, src: int = 0) -> object:
    """Rank ``src``'s ``obj`` on every process."""
    return info.broadcast_object(obj, src)


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def shard_bounds(n: int, batch_size: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[lo, hi)`` of rank ``rank``'s contiguous shard of ``n`` samples, cut at batch boundaries: every rank processes
    whole batches of the single-process run (the same images in the same batches), so sharded features are bit for bit
    the single-process ones. The ``ceil(n / batch_size)`` batches are split as evenly as possible."""
    batches = -(-n // batch_size)
    b0, b1 = rank * batches // world_size, (rank + 1) * batches // world_size
    return min(n, b0 * batch_size), min(n, b1 * batch_size)


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
