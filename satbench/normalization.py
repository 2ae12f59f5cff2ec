"""Normalisation: the :class:`Normalization` type and the model-level presets (what a card's ``normalization:`` names).

Per-dataset tables (SatDINO's 3-decimal roundings in ``satdino/__init__.py`` ``normalization_values``) live with the
datasets in the catalog (``satbench/data/catalog/<name>.yaml``); :func:`satbench.data.catalog.resolve_normalization`
resolves a user's string against both.
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
        # SatDINO's pretraining statistics (satdino/__init__.py normalization_values["fmow"]; spec 2.5).
        Normalization("fmow", (0.433, 0.436, 0.407), (0.198, 0.193, 0.195)),
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
