"""The typed settings of a cached-heads linear protocol (``tasks/linear/cached-linear-v1.yaml``).

Kept apart from :mod:`satbench.eval.cached_linear` so that listing tasks (``satbench run --help``, the leaderboard)
imports no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from satbench.config.protocols import Protocol
from satbench.config.settings import between, ge, gt, nonempty
from satbench.errors import ProtocolError


@dataclass(frozen=True)
class CachedLinearSettings:
    """The typed settings of a cached-heads protocol (strict: unknown keys and wrong types are refused)."""

    method: Literal["cached-heads"]
    lrs: tuple[float, ...] = field(default=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2), metadata={**gt(0), **nonempty()})
    weight_decays: tuple[float, ...] = field(default=(0.0, 1e-2, 1e-1, 1.0), metadata={**ge(0), **nonempty()})
    epochs: int = field(default=100, metadata=gt(0))
    batch_size: int = field(default=256, metadata=gt(0))
    head_init_std: float = field(default=0.01, metadata=ge(0))
    holdout_fraction: float = field(default=0.2, metadata=between(0, 1, lo_open=True, hi_open=True))
    val_resize: int = field(default=256, metadata=gt(0))
    val_crop: int = field(default=224, metadata=gt(0))
    normalization: str = "model"
    betas: tuple[float, float] = field(default=(0.9, 0.999), metadata=between(0, 1, hi_open=True))
    eps: float = field(default=1e-8, metadata=gt(0))
    feature: Literal["cls"] = "cls"

    @classmethod
    def from_protocol(cls, protocol: Protocol) -> "CachedLinearSettings":
        if protocol.params.get("method") != "cached-heads":
            raise ProtocolError(f"protocol {protocol.name}: not a cached-heads protocol "
                                f"(method: {protocol.params.get('method')!r})")
        return protocol.settings(cls)

    def grid(self) -> list[tuple[float, float]]:
        """(lr, wd) pairs in grid order: learning rates outer, weight decays inner."""
        return [(float(lr), float(wd)) for lr in self.lrs for wd in self.weight_decays]
