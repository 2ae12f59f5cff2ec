"""The model registry: one YAML card per model in ``models/``; names resolve to cards and models."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .errors import SatbenchError, UnknownNameError, close_matches
from .normalization import Normalization, get_normalization
from .resources import models_dir
from .yamlio import load_yaml, read_yaml_text

REQUIRED_CARD_KEYS = ("name", "family", "patch_size", "embed_dim", "depth", "feature_dim", "normalization")


@dataclass(frozen=True)
class ModelCard:
    """A registered model: architecture, weights sources, normalisation and expected size."""

    name: str
    family: str
    patch_size: int
    embed_dim: int
    depth: int
    feature_dim: int
    normalization: str
    arch: str = ""
    num_heads: int = 0
    img_size: int = 224
    description: str = ""
    feature: str = "cls"
    params_expected: int | None = None
    params_exclude: tuple[str, ...] = ()
    weights: dict[str, dict[str, Any]] = field(default_factory=dict)
    paper: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    license: str = ""
    aliases: tuple[str, ...] = ()
    path: str = ""

    @property
    def norm(self) -> Normalization:
        return get_normalization(self.normalization)

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d.pop("path", None)
        return d


def _load_card(path: Path) -> ModelCard:
    text = read_yaml_text(path, "model card")
    try:
        data = load_yaml(text, f"model card {path}")
    except yaml.YAMLError as exc:
        raise SatbenchError(f"model card {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise SatbenchError(f"model card {path} must be a mapping")
    missing = [k for k in REQUIRED_CARD_KEYS if k not in data]
    if missing:
        raise SatbenchError(f"model card {path} lacks required keys: {', '.join(missing)}")
    known = set(ModelCard.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise SatbenchError(f"model card {path} has unknown keys: {', '.join(unknown)}")
    for key in ("params_exclude", "aliases"):
        if key in data:
            data[key] = tuple(data[key] or ())
    data["weights"] = data.get("weights") or {}
    _check_card_types(path, data)
    return ModelCard(path=str(path), **data)


_CARD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "family": (str,), "patch_size": (int,), "embed_dim": (int,), "depth": (int,),
    "feature_dim": (int,), "normalization": (str,), "arch": (str,), "num_heads": (int,), "img_size": (int,),
    "description": (str,), "feature": (str,), "params_expected": (int, type(None)), "params_exclude": (tuple,),
    "weights": (dict,), "paper": (dict,), "options": (dict,), "license": (str,), "aliases": (tuple,),
}
_POSITIVE = ("patch_size", "embed_dim", "depth", "feature_dim", "img_size")


def _check_card_types(path: Path, data: dict[str, Any]) -> None:
    """Each key's YAML type (ints are ints, never strings), positive sizes, a known normalisation preset."""
    for key, value in data.items():
        types = _CARD_TYPES[key]
        if isinstance(value, bool) or not isinstance(value, types):
            want = " or ".join("null" if t is type(None) else {"tuple": "list"}.get(t.__name__, t.__name__) for t in types)
            raise SatbenchError(f"model card {path}: {key} must be {want}, got {value!r}")
        if key in _POSITIVE and value <= 0:
            raise SatbenchError(f"model card {path}: {key} must be > 0, got {value}")
    try:
        get_normalization(data["normalization"])
    except SatbenchError as exc:
        raise SatbenchError(f"model card {path}: normalization: {exc}") from None


@lru_cache(maxsize=None)
def _cards_in(folder: str) -> dict[str, ModelCard]:
    cards: dict[str, ModelCard] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        card = _load_card(path)
        if path.stem != card.name:
            raise SatbenchError(f"model card {path} declares name {card.name!r}; the file must be named {card.name}.yaml")
        cards[card.name] = card
    return cards


def card_folders() -> list[Path]:
    """The shipped ``models/`` folder, then any folders listed in ``$SATBENCH_MODEL_CARDS`` (os.pathsep-separated)."""
    extra = [Path(p) for p in os.environ.get("SATBENCH_MODEL_CARDS", "").split(os.pathsep) if p]
    for p in extra:
        if not p.is_dir():
            raise SatbenchError(f"$SATBENCH_MODEL_CARDS names {p}, which is not a folder of model cards")
    return [models_dir(), *extra]


def _cards(_unused: str = "") -> dict[str, ModelCard]:
    cards: dict[str, ModelCard] = {}
    for folder in card_folders():
        for name, card in _cards_in(str(folder)).items():
            if name in cards:
                raise SatbenchError(f"model {name!r} is defined twice ({cards[name].path}, {card.path})")
            cards[name] = card
    return cards


def list_cards() -> list[ModelCard]:
    """All registered cards (shipped and ``$SATBENCH_MODEL_CARDS``), sorted by name."""
    return sorted(_cards().values(), key=lambda c: c.name)


def dynamic_card(name: str) -> ModelCard | None:
    """Cards made on the fly for prefixed names (``timm:<model>``); None for plain names."""
    if name.startswith("timm:"):
        try:
            from .backbones import timm_vit  # type: ignore[attr-defined]
        except ImportError:
            raise UnknownNameError(f"model {name!r}: the timm family is not available in this build") from None
        return timm_vit.card_for(name)
    return None


def get_card(name: str) -> ModelCard:
    """Resolve a model name (or alias) to its card; unknown names list close matches."""
    card = dynamic_card(name)
    if card is not None:
        return card
    cards = _cards()
    if name in cards:
        return cards[name]
    for c in cards.values():
        if name in c.aliases:
            return c
    names = sorted(cards)
    raise UnknownNameError(f"unknown model {name!r}{close_matches(name, names)}; registered: {', '.join(names)}")
