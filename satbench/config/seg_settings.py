"""The typed settings of a segmentation protocol (``tasks/segmentation/*.yaml``): the UperNet recipe as data.

A leaf module (no mmseg, no torch), so listings and `satbench run --help` read it without importing :mod:`satbench.seg`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from satbench.errors import ProtocolError
from satbench.config.settings import between, ge, gt, nonempty


@dataclass(frozen=True)
class SegmentationSettings:
    """UperNet on a satbench backbone through mmsegmentation (see ``tasks/segmentation/upernet-v1.yaml``)."""

    iters: int = field(metadata=gt(0))
    total_batch: int = field(metadata=gt(0))
    lr: float = field(metadata=gt(0))
    optimizer: Literal["adamw"] = "adamw"
    betas: tuple[float, float] = field(default=(0.9, 0.999), metadata=between(0, 1, hi_open=True))
    weight_decay: float = field(default=0.01, metadata=ge(0))
    warmup_iters: int = field(default=1500, metadata=ge(0))
    warmup_reference_iters: int = field(default=80000, metadata=gt(0))
    warmup_start_factor: float = field(default=1e-6, metadata=between(0, 1, lo_open=True))
    poly_power: float = field(default=1.0, metadata=gt(0))
    out_indices: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    norm_layers: bool = True
    frozen: bool = False
    layer_decay: Optional[float] = field(default=None, metadata=between(0, 1, lo_open=True))
    neck_rescales: tuple[float, float, float, float] = (4, 2, 1, 0.5)
    decode_channels: int = field(default=512, metadata=gt(0))
    aux_channels: int = field(default=256, metadata=gt(0))
    aux_loss_weight: float = field(default=0.4, metadata=ge(0))
    test_mode: Literal["slide"] = "slide"
    test_stride_ratio: float = field(default=2 / 3, metadata=between(0, 1, lo_open=True))
    crops: tuple[int, ...] = field(default=(224, 512), metadata={**gt(0), **nonempty()})

    def check(self, where: str) -> None:
        for depth, idx in self.out_indices.items():
            if not depth.isdigit() or list(idx) != sorted(idx) or min(idx) < 0 or max(idx) >= int(depth):
                raise ProtocolError(f"{where}: out_indices.{depth} must be 4 increasing block indices below {depth}")
        if tuple(self.neck_rescales) != (4, 2, 1, 0.5):
            raise ProtocolError(f"{where}: neck_rescales must be [4, 2, 1, 0.5] (the only pyramid implemented)")

    def out_indices_for(self, depth: int) -> Optional[tuple[int, ...]]:
        """The tapped blocks for a backbone of ``depth`` blocks (None: the protocol names none for that depth)."""
        idx = self.out_indices.get(str(depth))
        return tuple(idx) if idx is not None else None

    def warmup_for(self, iters: int) -> int:
        """The warm-up length for a run of ``iters`` iterations: ``warmup_iters`` of ``warmup_reference_iters``,
        scaled proportionally (integer division) for other lengths."""
        return self.warmup_iters * iters // self.warmup_reference_iters
