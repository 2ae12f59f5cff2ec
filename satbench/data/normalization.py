"""Normalisation: the :class:`Normalization` type and the model-level presets (what a card's ``normalization:`` names).

Per-dataset tables (SatDINO's 3-decimal roundings in ``satdino/__init__.py`` ``normalization_values``) live with the
datasets in the catalog (``satbench/data/catalog/<name>.yaml``); :func:`satbench.data.catalog.resolve_normalization`
resolves a user's string against both.

Every :class:`Normalization` is validated when it is created, wherever that happens (the presets here,
``--normalization mean=..;std=..``, a protocol's table, statistics computed from a dataset, a timm cfg):
exactly 3 finite means in [0, 1] and 3 finite stds in [:data:`MIN_STD`, 1]. satbench's images are in
[0, 1], so no mean outside [0, 1] and no std above 1 can describe them (0-255 statistics are the usual
cause); a std below 1/1000 would blow the normalised inputs up beyond +-1000 (``std=1e-30`` overflows
the backbone to NaN), far from anything a backbone saw in training (the smallest std in satbench's tables
is 0.091).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

from satbench.errors import SatbenchError, UnknownNameError, close_matches

#: Smallest std accepted (see the module docstring).
MIN_STD = 1e-3


class NormalizationError(SatbenchError):
    """A normalisation whose mean / std cannot be applied to images in [0, 1]."""


def _three(name: str, what: str, values: object) -> tuple[float, float, float]:
    try:
        vals = list(values)  # type: ignore[call-overload]
    except TypeError:
        raise NormalizationError(f"normalization {name!r}: {what} must be 3 numbers, got {values!r}") from None
    if len(vals) != 3 or not all(isinstance(v, Real) and not isinstance(v, bool) for v in vals):
        raise NormalizationError(f"normalization {name!r}: {what} must be 3 numbers (R, G, B), got {vals!r}")
    out = tuple(float(v) for v in vals)
    if not all(math.isfinite(v) for v in out):
        raise NormalizationError(f"normalization {name!r}: {what} must be finite, got {list(out)}")
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std applied as ``(x - mean) / std`` to images in [0, 1] (validated on creation)."""

    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __post_init__(self) -> None:
        mean = _three(self.name, "mean", self.mean)
        std = _three(self.name, "std", self.std)
        if not all(0.0 <= m <= 1.0 for m in mean):
            raise NormalizationError(f"normalization {self.name!r}: mean {list(mean)} is outside [0, 1]; satbench's "
                                     f"images are in [0, 1] (0-255 statistics? divide them by 255)")
        if not all(MIN_STD <= s <= 1.0 for s in std):
            raise NormalizationError(f"normalization {self.name!r}: std {list(std)} must lie in [{MIN_STD:g}, 1] "
                                     f"for images in [0, 1] (0-255 statistics? divide them by 255)")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def as_dict(self) -> dict:
        return {"name": self.name, "mean": list(self.mean), "std": list(self.std)}


PRESETS: dict[str, Normalization] = {
    n.name: n
    for n in [
        Normalization("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        # SatDINO's pretraining statistics (satdino/__init__.py normalization_values["fmow"]; spec 2.5).
        Normalization("fmow", (0.433, 0.436, 0.407), (0.198, 0.193, 0.195)),
        # SatMAE's own fMoW-RGB statistics, exactly as SatMAE's code uses them: sustainlab-group/SatMAE
        # util/datasets.py lines 94-95 (CustomDatasetFromImages.mean / .std; the same values at lines 132-133 and
        # 233-234), commit e31c11fa1bef6f9a9aa3eb49e8637c8b8952ba5e. The card satmae-vit_large-16 uses this preset.
        Normalization("satmae-fmow-exact", (0.4182007312774658, 0.4214799106121063, 0.3991275727748871),
                      (0.28774282336235046, 0.27541765570640564, 0.2764017581939697)),
        # Legacy: the 4-decimal rounding of the values above (spec section 6.1) that satbench's SatMAE card used before
        # satmae-fmow-exact. Not SatMAE's numbers (ViT-L features move by up to 4.2e-4); kept unchanged so that records
        # naming "satmae-fmow" still resolve to the statistics they were computed with.
        Normalization("satmae-fmow", (0.4182, 0.4215, 0.3991), (0.2877, 0.2754, 0.2764)),
    ]
}


def register_normalization(norm: Normalization) -> Normalization:
    """Add a preset (e.g. a baseline's own statistics)."""
    PRESETS[norm.name] = norm
    return norm


def get_normalization(name: str) -> Normalization:
    """Look a preset up by name; an unknown name is an error listing close matches."""
    try:
        return PRESETS[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown normalization {name!r}{close_matches(name, list(PRESETS))}; known: {', '.join(PRESETS)}"
        ) from None


def parse_normalization(spec: str) -> Normalization:
    """A preset name, or ``mean=a,b,c;std=d,e,f`` (custom values, recorded as given)."""
    if "=" not in spec:
        return get_normalization(spec)
    try:
        parts = dict(p.split("=", 1) for p in spec.replace(" ", "").split(";"))
        if set(parts) != {"mean", "std"}:
            raise ValueError
        mean = tuple(float(v) for v in parts["mean"].split(","))
        std = tuple(float(v) for v in parts["std"].split(","))
        if len(mean) != 3 or len(std) != 3:
            raise ValueError
    except ValueError:
        raise UnknownNameError(
            f"cannot parse normalization {spec!r}: expected a preset name or 'mean=a,b,c;std=d,e,f' (3 values each)"
        ) from None
    try:
        return Normalization("custom", mean, std)  # type: ignore[arg-type]
    except NormalizationError as exc:
        raise NormalizationError(f"--normalization {spec!r}: {str(exc).split(': ', 1)[1]}") from None
