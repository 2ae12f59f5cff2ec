"""The model registry: one YAML card per model in ``models/`` (and ``$SATBENCH_MODEL_CARDS`` folders).

Names resolve to :class:`~satbench.models.cards.ModelCard` objects. A card is checked twice: its own schema
(:func:`satbench.models.cards.card_from_mapping`) and its family's rules (declared options and their values, dimensions
against the arch). A bad card never breaks the registry: :func:`list_cards` skips it and :func:`card_problems`
reports it; resolving that card's own name raises its error. Names with a family prefix (``timm:<model>``)
are resolved by the family that declares the prefix.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from satbench.models.backbones import FAMILIES
from satbench.models.cards import CardError, ModelCard, read_card_file
from satbench.errors import SatbenchError, UnknownNameError, close_matches
from satbench.runtime.plugins import load_plugins
from satbench.runtime.resources import models_dir
from satbench.config.yamlio import read_folder, search_folders

__all__ = ["ModelCard", "get_card", "list_cards", "card_problems", "load_card_file", "card_folders"]


def check_card_family(card: ModelCard, where: str) -> ModelCard:
    """The family exists, the card's options are ones it declares, and its family-specific rules hold."""
    family = FAMILIES.get(card.family)
    if family is None:
        raise CardError(f"{where}: unknown family {card.family!r}{close_matches(card.family, sorted(FAMILIES))} "
                        f"(known: {', '.join(sorted(FAMILIES))})")
    try:
        family.check_options(dict(card.options), where)
        if family.check_card is not None:
            family.check_card(card, where)
    except CardError:
        raise
    except SatbenchError as exc:
        raise CardError(str(exc)) from None
    return card


def load_card_file(path: str | os.PathLike) -> ModelCard:
    """Read one card file with every check (schema and family)."""
    path = Path(path)
    card = read_card_file(path)
    return check_card_family(card, f"model card {path}")


@lru_cache(maxsize=None)
def _cards_in(folder: str) -> tuple[dict[str, ModelCard], dict[str, str]]:
    """``(cards by name, problems by file)`` of one folder."""
    found, problems = read_folder(folder, load_card_file)
    return {card.name: card for card in found}, dict(problems)


def card_folders() -> list[Path]:
    """The shipped ``models/`` folder, then any folders listed in ``$SATBENCH_MODEL_CARDS`` (os.pathsep-separated)."""
    return search_folders(models_dir(), "SATBENCH_MODEL_CARDS", "model cards")


def _registry() -> tuple[dict[str, ModelCard], dict[str, str]]:
    load_plugins()  # families from plug-ins must exist before their cards are checked
    cards: dict[str, ModelCard] = {}
    problems: dict[str, str] = {}
    for folder in card_folders():
        found, bad = _cards_in(str(folder))
        problems.update(bad)
        for name, card in found.items():
            if name in cards:
                problems[card.path] = (f"model card {card.path}: model {name!r} is already defined by "
                                       f"{cards[name].path}")
                continue
            cards[name] = card
    return cards, problems


def list_cards() -> list[ModelCard]:
    """All valid registered cards (shipped and ``$SATBENCH_MODEL_CARDS``), sorted by name."""
    return sorted(_registry()[0].values(), key=lambda c: c.name)


def card_problems() -> dict[str, str]:
    """Card files that were skipped, with the one-line reason for each."""
    return _registry()[1]


def dynamic_card(name: str) -> ModelCard | None:
    """Cards made on the fly for prefixed names (``timm:<model>``); None for plain names."""
    load_plugins()
    for family in FAMILIES.values():
        if family.name_prefix and name.startswith(family.name_prefix) and family.dynamic_card is not None:
            return family.dynamic_card(name)
    return None


def get_card(name: str) -> ModelCard:
    """Resolve a model name (or alias, or a card file path ``*.yaml``) to its card; unknown names list close matches."""
    if name.endswith((".yaml", ".yml")):
        p = Path(name).expanduser()
        if not p.is_file():
            raise SatbenchError(f"model card file {p} does not exist")
        return load_card_file(p)
    card = dynamic_card(name)
    if card is not None:
        return card
    cards, problems = _registry()
    if name in cards:
        return cards[name]
    for c in cards.values():
        if name in c.aliases:
            return c
    for path, problem in problems.items():
        if Path(path).stem == name:
            raise CardError(problem)
    names = sorted(cards)
    raise UnknownNameError(f"unknown model {name!r}{close_matches(name, names)}; registered: {', '.join(names)}")
