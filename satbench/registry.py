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
    try:
        data = yaml.safe_load(path.read_text())
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
    _check_weight_entries(path, data["weights"])
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


# ---------------------------------------------------------------------------------------------------
# Weight entries (``weights.<kind>``): where the file is, its pins, key prefix and known answer
# ---------------------------------------------------------------------------------------------------
WEIGHT_ENTRY_KEYS: dict[str, str] = {
    "hf_repo": "the Hugging Face repository (owner/name)",
    "filename": "the weight file's name (in the repository, the cache and the download)",
    "url": "a plain download URL (when not on the hub)",
    "revision": "the hub commit the file is pinned to ('' when not yet known)",
    "sha256": "the file's sha256 ('' when not yet known); a different file is refused unless --allow-unpinned",
    "key_prefix": "a prefix every backbone key carries in the file (e.g. 'model.' in Hugging Face style files)",
    "known_answer": "feature statistics of a bundled image under these weights (`satbench verify`)",
}
KNOWN_ANSWER_KEYS = ("image", "size", "normalization", "cls_mean", "cls_std", "cls_first", "atol")
_HEX64 = frozenset("0123456789abcdef")


def _check_weight_entries(path: Path, weights: dict[str, Any]) -> None:
    """Each ``weights.<kind>`` entry: a mapping of known keys with the right types (one clear line otherwise)."""
    for kind, entry in weights.items():
        where = f"model card {path}: weights.{kind}"
        if not isinstance(entry, dict):
            raise SatbenchError(f"{where} must be a mapping (hf_repo/url, filename, sha256, ...), got {entry!r}")
        unknown = sorted(set(entry) - set(WEIGHT_ENTRY_KEYS))
        if unknown:
            raise SatbenchError(f"{where} has unknown keys: {', '.join(map(str, unknown))} (known: {', '.join(WEIGHT_ENTRY_KEYS)})")
        for key in ("hf_repo", "filename", "url", "revision", "sha256", "key_prefix"):
            if key in entry and entry[key] is not None and not isinstance(entry[key], str):
                raise SatbenchError(f"{where}.{key} must be a string, got {entry[key]!r}")
        sha = entry.get("sha256") or ""
        if sha and (len(sha) != 64 or not set(sha) <= _HEX64):
            raise SatbenchError(f"{where}.sha256 must be 64 lowercase hex digits (or ''), got {sha!r}")
        if "key_prefix" in entry and not entry["key_prefix"]:
            raise SatbenchError(f"{where}.key_prefix must be a non-empty string such as 'model.', got {entry['key_prefix']!r}")
        if entry.get("known_answer") is not None:
            _check_known_answer(f"{where}.known_answer", entry["known_answer"])


def _check_known_answer(where: str, ka: Any) -> None:
    if not isinstance(ka, dict):
        raise SatbenchError(f"{where} must be a mapping ({', '.join(KNOWN_ANSWER_KEYS)}), got {ka!r}")
    unknown = sorted(set(ka) - set(KNOWN_ANSWER_KEYS))
    missing = [k for k in ("image", "size", "cls_mean", "cls_std", "cls_first", "atol") if k not in ka]
    if unknown or missing:
        raise SatbenchError(f"{where}: " + "; ".join(
            ([f"unknown keys {', '.join(map(str, unknown))}"] if unknown else []) + ([f"missing {', '.join(missing)}"] if missing else [])))
    image = ka["image"]
    if not isinstance(image, str) or not image or image.startswith("/") or ".." in image.replace("\\", "/").split("/"):
        raise SatbenchError(f"{where}.image must be a path under satbench's bundled data (e.g. "
                            f"ucm-mini/images/airplane/airplane16.jpg), got {image!r}")
    if isinstance(ka["size"], bool) or not isinstance(ka["size"], int) or ka["size"] <= 0:
        raise SatbenchError(f"{where}.size must be a positive integer (pixels), got {ka['size']!r}")
    if "normalization" in ka and not isinstance(ka["normalization"], str):
        raise SatbenchError(f"{where}.normalization must be a preset name, got {ka['normalization']!r}")
    for key in ("cls_mean", "cls_std", "atol"):
        v = ka[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
            raise SatbenchError(f"{where}.{key} must be a number, got {v!r}")
    if ka["atol"] <= 0:
        raise SatbenchError(f"{where}.atol must be > 0, got {ka['atol']!r}")
    first = ka["cls_first"]
    if (not isinstance(first, list) or not first or len(first) > 64
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in first)):
        raise SatbenchError(f"{where}.cls_first must be a list of 1 to 64 numbers, got {first!r}")


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
