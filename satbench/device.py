"""The one device parser: ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> ``torch.device`` (clear errors otherwise)."""

from __future__ import annotations

import re
from typing import Optional

import torch

from .errors import SatbenchError

_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


def parse_device(device: Optional[str | torch.device] = None) -> torch.device:
    """``device`` as a ``torch.device``: ``None``/``auto`` is CUDA when present, else the CPU. Anything but
    ``cpu``/``cuda``/``cuda:N`` (e.g. ``meta``) is refused, and so is CUDA on a machine without it."""
    if isinstance(device, torch.device):
        spec = str(device)
    else:
        spec = "auto" if device is None else str(device)
    if not _DEVICE.match(spec):
        raise SatbenchError(f"unknown device {spec!r} (expected auto, cpu, cuda or cuda:N)")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(spec)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SatbenchError(f"device {spec!r} requested but CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SatbenchError(f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev
