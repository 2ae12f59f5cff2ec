"""The typed settings of a linear-probe / fine-tuning protocol (``tasks/linear``, ``tasks/finetune``; spec 4.1, 4.2).

Strict, like every protocol: unknown keys, wrong types and out-of-range values are one line naming the file and key.
``feature``, ``scheduler`` and ``report`` are descriptive keys with exactly one implemented value each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from satbench.errors import ProtocolError
from satbench.config.protocols import Protocol
from satbench.config.settings import between, ge, gt

MODES = ("head", "full")


@dataclass(frozen=True)
class LinearSettings:
    """The numerics of a linear / fine-tune protocol (from its ``params``)."""

    mode: Literal["head", "full"] = "head"
    epochs: int = field(default=25, metadata=gt(0))
    lr: float = field(default=1e-5, metadata=gt(0))
    lr_head: float = field(default=0.0, metadata=ge(0))
    lr_scaling_denominator: int = field(default=256, metadata=gt(0))
    batch_size: int = field(default=128, metadata=gt(0))
    optimizer: Literal["adamw", "sgd"] = "adamw"
    weight_decay: float = field(default=0.0, metadata=ge(0))
    momentum: float = field(default=0.9, metadata=ge(0))
    head_init_std: float = field(default=0.01, metadata=ge(0))
    train_crop: int = field(default=224, metadata=gt(0))
    val_resize: int = field(default=256, metadata=gt(0))
    val_crop: int = field(default=224, metadata=gt(0))
    normalization: str = "model"
    val_freq: int = field(default=1, metadata=gt(0))
    feature: Literal["cls"] = "cls"
    scheduler: Literal["cosine-per-epoch"] = "cosine-per-epoch"
    report: Literal["best-epoch"] = "best-epoch"
    #: Temperature scaling only (``--temperature-scaling``): this stratified, seeded fraction of the train split is
    #: held out of training, and the best epoch's head's logits on it fit the temperature. 0 (every released protocol)
    #: trains on the whole split, as the paper does; a positive value is an override, so it is hashed and recorded.
    temperature_holdout: float = field(default=0.0, metadata=between(0, 0.5, hi_open=True))

    def check(self, where: str) -> None:
        if self.val_crop > self.val_resize:
            raise ProtocolError(f"{where}: val_crop {self.val_crop} is larger than val_resize {self.val_resize}")

    @classmethod
    def from_protocol(cls, protocol: Protocol) -> "LinearSettings":
        return protocol.settings(cls)

    def scaled_lr(self, world_size: int, base: Optional[float] = None) -> float:
        """``base x (batch_per_process x world) / 256``."""
        return (self.lr if base is None else base) * self.batch_size * world_size / self.lr_scaling_denominator
