"""Normalisation tables, exactly as the official code uses them (spec section 2.5).

The per-dataset values are the 3-decimal roundings hard-coded in SatDINO's ``satdino/__init__.py``
(``normalization_values``); the code uses these rounded values, not the full-precision ``stats.json``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UnknownNameError, close_matches


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and std applied as ``(x - mean) / std`` to images in [0, 1]."""

    name: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def as_dict(self) -> dict:
        return {"name": self.name, "mean": list(self.mean), "std": list(self.std)}


PRESETS: dict[str, Normalization] = {
    n.name: n
    for n in [
        Normalization("imagenet", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        Normalization("fmow", (0.433, 0.436, 0.407), (0.198, 0.193, 0.195)),
        Normalization("eurosat", (0.343, 0.379, 0.406), (0.168, 0.110, 0.091)),
        Normalization("resisc45", (0.367, 0.379, 0.342), (0.131, 0.115, 0.118)),
        Normalization("uc_merced", (0.482, 0.488, 0.449), (0.116, 0.102, 0.103)),
        Normalization("whu-rs19", (0.424, 0.446, 0.401), (0.165, 0.147, 0.160)),
        Normalization("rs_c11", (0.347, 0.342, 0.318), (0.110, 0.104, 0.111)),
        Normalization("siri-whu", (0.352, 0.378, 0.365), (0.106, 0.101, 0.107)),
        # SatMAE's own fMoW-RGB statistics (spec section 6.1).
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
        mean = tuple(float(v) for v in parts["mean"].split(","))
        std = tuple(float(v) for v in parts["std"].split(","))
        assert len(mean) == 3 and len(std) == 3 and all(s > 0 for s in std)
    except Exception:
        raise UnknownNameError(
            f"cannot parse normalization {spec!r}: expected a preset name or 'mean=a,b,c;std=d,e,f'"
        ) from None
    return Normalization("custom", mean, std)  # type: ignore[arg-type]
