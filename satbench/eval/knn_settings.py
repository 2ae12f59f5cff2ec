"""The typed settings of a kNN protocol (``tasks/knn/*.yaml``): every key declared, every value checked.

A protocol with a misspelled key (``temprature``), a wrong type (``k: 20`` instead of a list) or an impossible value
(``resize_ratio: [256, 0]``) is refused with one line naming the protocol file and the key, before any work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Union

from satbench.errors import ProtocolError
from satbench.config.settings import gt, nonempty


@dataclass(frozen=True)
class NormTable:
    """Per-channel statistics of one dataset in a protocol's own normalisation table."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float] = field(metadata=gt(0))


@dataclass(frozen=True)
class KnnSettings:
    """SatDINO's multi-scale weighted kNN (spec 3.3) and Scale-MAE's variant of it."""

    scales: tuple[float, ...] = field(metadata={**gt(0), **nonempty()})
    k: tuple[int, ...] = field(metadata={**gt(0), **nonempty()})
    k_report: int = field(metadata=gt(0))
    temperature: float = field(metadata=gt(0))
    size_multiple: int = field(default=16, metadata=gt(0))
    transform: Literal["resize-center-crop", "native-area"] = "resize-center-crop"
    resize_ratio: Union[tuple[float, float], float] = field(default=(256, 224), metadata=gt(0))
    interpolation: Literal["bicubic"] = "bicubic"
    native_resize: dict[str, int] = field(default_factory=dict)
    normalization: Literal["dataset", "table"] = "dataset"
    normalization_table: dict[str, NormTable] = field(default_factory=dict)
    feature: Literal["cls"] = "cls"
    l2_normalize: Literal[True] = True
    metric: Literal["cosine"] = "cosine"
    average: Literal["mean-over-scale-entries"] = "mean-over-scale-entries"
    input_res: Literal["none", "224/size", "1.0"] = "none"
    #: How a size that is not a whole number of the model's patches is fitted (satbench.eval.size_rules).
    size_rule: Literal["floor", "crop", "strict"] = "floor"

    def check(self, where: str) -> None:
        if self.k_report not in self.k:
            raise ProtocolError(f"{where}: k_report {self.k_report} is not one of k {list(self.k)}")
        if len(set(self.k)) != len(self.k):
            raise ProtocolError(f"{where}: k lists a value twice: {list(self.k)}")
        if self.normalization == "table" and not self.normalization_table:
            raise ProtocolError(f"{where}: normalization 'table' needs a non-empty normalization_table")
        for name, size in self.native_resize.items():
            if size <= 0:
                raise ProtocolError(f"{where}: native_resize.{name} must be > 0, got {size}")

    @property
    def ratio(self) -> float:
        """The short-side resize ratio before the centre crop (256/224 by default)."""
        r = self.resize_ratio
        return float(r[0]) / float(r[1]) if isinstance(r, tuple) else float(r)
