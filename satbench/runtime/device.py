"""The one device parser: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> ``torch.device`` (clear errors otherwise)."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Optional

from satbench.errors import SatbenchError

if TYPE_CHECKING:
    import torch

#: The device strings satbench accepts (the command line's ``--device`` and :func:`parse_device`).
DEVICE_SPEC = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
#: The accepted device strings, as the error messages name them.
DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def is_device_spec(spec: str) -> bool:
    """Whether ``spec`` is one of :data:`DEVICE_CHOICES` (a syntax check only; needs no torch)."""
    return bool(DEVICE_SPEC.match(spec))


def parse_device(device: Optional[str | torch.device] = None) -> torch.device:
    """``device`` as a ``torch.device``: ``None``/``auto`` is CUDA when present, else the CPU. Anything but
    ``cpu``/``cuda``/``cuda:N`` (e.g. ``meta``) is refused, and so is CUDA on a machine without it."""
    import torch  # here, so the command line can check --device (is_device_spec) without loading torch

    if isinstance(device, torch.device):
        spec = str(device)
    else:
        spec = "auto" if device is None else str(device)
    if not is_device_spec(spec):
        raise SatbenchError(f"unknown device {spec!r} (expected {DEVICE_CHOICES})")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SatbenchError(f"device {spec!r} requested but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SatbenchError(f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def cpu_kind() -> str:
    """Which kind of CPU this is for bf16: ``amx_bf16`` / ``avx512_bf16`` (native bf16) or ``AVX2 only``."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        flags = ""
    kinds = [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
    return ", ".join(kinds) + " (native bf16)" if kinds else "AVX2 only (bf16 emulated)"


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AMX or AVX-512 bf16 instructions (there bf16 autocast is faster than fp32)."""
    return "native" in cpu_kind()


_WARNED_BF16 = False


def warn_if_emulated_bf16(device: torch.device, bf16: bool) -> None:
    """Say once per process that bf16 on a CPU without native bf16 is emulated and slower than fp32."""
    global _WARNED_BF16
    if bf16 and device.type == "cpu" and not _WARNED_BF16 and not cpu_has_native_bf16():
        import logging

        _WARNED_BF16 = True
        logging.getLogger("satbench").warning(
            "--bf16 on this CPU is emulated (no avx512_bf16 / AMX): it will be slower than fp32 (about 10x here), "
            "and its numbers differ from fp32's")


#: Data-loader workers a GPU run gets at least (the CPU count allowing): one decoding process cannot feed a GPU.
GPU_MIN_WORKERS = 4


def default_num_workers(task_default: int, device: Optional[str] = None) -> int:
    """The loader workers of a run that did not choose: the task's default on the CPU; on a GPU at least
    :data:`GPU_MIN_WORKERS` (at most the CPU count), so decoding keeps up with the device."""
    if parse_device(device).type != "cuda":
        return task_default
    return max(task_default, min(GPU_MIN_WORKERS, os.cpu_count() or 1))
