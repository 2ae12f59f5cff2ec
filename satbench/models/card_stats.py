"""Parameter counts and GFLOPs of the shipped model cards, computed once and stored as data.

``satbench models`` used to build every model (importing torch and timm, ~6 s on 2 cores) to count its parameters.
The figures of the shipped cards are data: ``card_stats.json`` holds, per card, the sha256 of the card file it was
computed from, the parameter count (as the paper counts it: ``params_exclude`` left out) and the GFLOPs at the card's
``img_size`` (:func:`satbench.models.backbones.linear_conv_gflops`). A card whose file differs from the stored
sha256, a card of ``$SATBENCH_MODEL_CARDS`` or one a plug-in adds has no stored entry and is built (meta device).
``tests/models/test_card_stats.py`` rebuilds every shipped card and checks the stored figures; regenerate with

    python -m satbench.models.card_stats
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

from satbench.models.cards import ModelCard

STATS_PATH = Path(__file__).with_name("card_stats.json")


def card_file_sha256(card: ModelCard) -> Optional[str]:
    """The sha256 of the card's file (None for cards made at run time, e.g. ``timm:<name>``)."""
    if not card.path or not Path(card.path).is_file():
        return None
    return hashlib.sha256(Path(card.path).read_bytes()).hexdigest()


def _table() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(STATS_PATH.read_text())
    except (OSError, ValueError):
        return {}
    return data.get("cards", {}) if isinstance(data, dict) else {}


def stored_stats(card: ModelCard) -> Optional[dict[str, Any]]:
    """``{"params": int, "gflops": float}`` stored for exactly this card file, or None (not shipped, or edited)."""
    entry = _table().get(card.name)
    sha = card_file_sha256(card)
    if not entry or sha is None or entry.get("card_sha256") != sha:
        return None
    return {"params": int(entry["params"]), "gflops": float(entry["gflops"])}


def compute_stats(card: ModelCard, flops: bool = True) -> dict[str, Any]:
    """Build the card's model on the meta device (shapes only) and count; ``gflops`` is None unless ``flops``."""
    import torch

    from satbench.models.backbones import FAMILIES, count_params, linear_conv_gflops

    with torch.device("meta"):
        model = FAMILIES[card.family].build(card, **card.options)
    params = count_params(model, exclude=card.params_exclude)
    return {"params": int(params), "gflops": round(linear_conv_gflops(model, card.img_size), 4) if flops else None}


def card_stats(card: ModelCard, flops: bool = True) -> dict[str, Any]:
    """The stored figures of a shipped, unedited card; otherwise computed (built once)."""
    return stored_stats(card) or compute_stats(card, flops=flops)


def write_stats(path: Path = STATS_PATH) -> dict[str, Any]:
    """Recompute the figures of every card in the shipped ``models/`` folder and write them (atomically)."""
    from satbench.io.atomic import atomic_write_json
    from satbench.models.registry import load_card_file
    from satbench.runtime.resources import models_dir

    cards = {}
    for p in sorted(models_dir().glob("*.yaml")):
        card = load_card_file(p)
        cards[card.name] = {"card_sha256": card_file_sha256(card), **compute_stats(card)}
    data = {"about": "params and GFLOPs@img_size of the shipped cards; python -m satbench.models.card_stats",
            "cards": cards}
    atomic_write_json(path, data)
    return data


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(write_stats(), indent=2))
