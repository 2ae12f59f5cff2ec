"""Where a card's weight files live in the local cache (no torch: ``satbench models`` reads it to list what is cached)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from satbench.errors import WeightsError
from satbench.models.cards import ModelCard
from satbench.runtime.resources import satbench_home


def weights_cache_dir() -> Path:
    """Where weights fetched by model name live: ``$SATBENCH_HOME/weights``."""
    return satbench_home() / "weights"


def weight_entry(card: ModelCard, kind: str) -> dict[str, Any]:
    """The card's ``weights.<kind>`` entry; a kind the card does not declare is a one-line error."""
    if kind not in card.weights:
        known = ", ".join(card.weights) or "none"
        raise WeightsError(f"model {card.name} declares no {kind!r} weights (declared: {known}); pass --weights PATH or --weights random")
    return card.weights[kind]


def cached_weight_path(card: ModelCard, kind: str = "pretrain") -> Path:
    """The path where the card's ``kind`` weight file is expected in the local cache."""
    entry = weight_entry(card, kind)
    return weights_cache_dir() / card.name / entry["filename"]
