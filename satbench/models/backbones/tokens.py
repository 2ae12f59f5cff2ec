"""Token groups and pooling, declared rather than guessed.

Every backbone's output sequence is ``[CLS?] [registers...] [patches...]``. A family states the layout
(:class:`TokenLayout`) from the model's own attributes (its ``cls_token`` and register parameters), never from a
"token count = square + 1" rule, which breaks on the 4 register tokens of DINOv2-reg and DINOv3.

Pooling is a named, recorded option (:data:`POOLS`):

* ``cls``: the final-normed CLS token (the SatDINO protocol's feature; DINOv3's upstream feature);
* ``avg``: the mean of the final-normed patch tokens, CLS and registers left out;
* ``cls+avg``: their concatenation ``[cls, avg]`` (DINOv2's linear evaluation), twice the width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from satbench.errors import SatbenchError

POOLS: tuple[str, ...] = ("cls", "avg", "cls+avg")


@dataclass(frozen=True)
class TokenLayout:
    """The prefix tokens before the patch tokens: ``cls`` (0 or 1) CLS tokens, then ``registers`` register tokens.

    ``register_kind`` names what the registers are (``"register"``: DINOv2-reg / DINOv3 learned registers;
    ``"gsd"``: SatDINO's GSD register)."""

    cls: int = 1
    registers: int = 0
    register_kind: str = "register"

    @property
    def prefix(self) -> int:
        """Number of tokens before the first patch token."""
        return self.cls + self.registers

    def as_dict(self) -> dict[str, Any]:
        return {"cls": self.cls, "registers": self.registers,
                "register_kind": self.register_kind if self.registers else None, "patches": "grid"}

    def describe(self) -> str:
        """``cls+4reg+patches`` style text."""
        parts = (["cls"] if self.cls else []) + ([f"{self.registers}{'gsd' if self.register_kind == 'gsd' else 'reg'}"]
                                                 if self.registers else []) + ["patches"]
        return "+".join(parts)

    def split(self, tokens: Tensor, where: str = "model") -> tuple[Tensor | None, Tensor, Tensor]:
        """``(cls [B, D] or None, registers [B, R, D], patches [B, N, D])`` of a ``[B, prefix + N, D]`` sequence."""
        if tokens.ndim != 3 or tokens.shape[1] <= self.prefix:
            raise SatbenchError(f"{where}: expected [B, {self.prefix} + patches, D] tokens for layout "
                                f"{self.describe()}, got {tuple(tokens.shape)}")
        cls = tokens[:, 0] if self.cls else None
        return cls, tokens[:, self.cls:self.prefix], tokens[:, self.prefix:]


def check_pool(pool: str, layout: TokenLayout, where: str) -> str:
    """``pool`` if it is one of :data:`POOLS` that ``layout`` can give (``cls`` needs a CLS token)."""
    if pool not in POOLS:
        raise SatbenchError(f"{where}: pool must be one of {', '.join(POOLS)}, got {pool!r}")
    if "cls" in pool and not layout.cls:
        raise SatbenchError(f"{where}: pool {pool!r} needs a CLS token, and this model has none "
                            f"(token layout {layout.describe()}); use pool avg")
    return pool


def pool_dim(embed_dim: int, pool: str) -> int:
    """Feature width of ``pool`` for tokens of ``embed_dim``."""
    return 2 * embed_dim if pool == "cls+avg" else embed_dim


def pool_tokens(tokens: Tensor, layout: TokenLayout, pool: str, where: str = "model") -> Tensor:
    """The ``[B, D]`` (``[B, 2D]`` for ``cls+avg``) feature of final-normed ``tokens`` under ``pool``."""
    cls, _, patches = layout.split(tokens, where)
    avg = patches.mean(dim=1)
    if pool == "avg":
        return avg
    if cls is None:
        raise SatbenchError(f"{where}: pool {pool!r} needs a CLS token (layout {layout.describe()})")
    return cls if pool == "cls" else torch.cat([cls, avg], dim=-1)


__all__ = ["POOLS", "TokenLayout", "check_pool", "pool_dim", "pool_tokens"]
