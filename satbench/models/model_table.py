"""The registry as rows: params (counted as the paper counts), GFLOPs at 224, feature dim, weights cached.

The shipped cards' params and GFLOPs are data (:mod:`satbench.models.card_stats`): when only the shipped, unedited
cards are registered (no ``$SATBENCH_MODEL_CARDS``, no plug-ins) the table is read without importing torch, in a
fraction of a second. Any other card is built once on the meta device to count it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional

from satbench.models.card_stats import card_stats, stored_stats
from satbench.models.cards import ModelCard, read_card_file
from satbench.models.weight_paths import cached_weight_path


def shipped_cards_only() -> Optional[list[ModelCard]]:
    """The shipped cards, sorted by name, when they are all that is registered and every one has stored figures
    (their files are the ones :mod:`satbench.models.card_stats` checked, family rules included); else None."""
    from satbench.runtime.plugins import plugin_modules
    from satbench.runtime.resources import models_dir

    if os.environ.get("SATBENCH_MODEL_CARDS") or plugin_modules():
        return None
    cards = []
    for path in sorted(Path(models_dir()).glob("*.yaml")):
        try:
            card = read_card_file(path)
        except Exception:
            return None  # the registry names the problem
        if stored_stats(card) is None:
            return None
        cards.append(card)
    return sorted(cards, key=lambda c: c.name)


def registered_cards() -> tuple[list[ModelCard], dict[str, str]]:
    """``(cards, problems by file)``: the torch-free shipped listing when it applies, else the full registry."""
    cards = shipped_cards_only()
    if cards is not None:
        return cards, {}
    from satbench.models.registry import card_problems, list_cards

    return list_cards(), card_problems()


def model_rows(flops: bool = True, cards: Optional[list[ModelCard]] = None) -> list[dict[str, Any]]:
    """One row per registered card (or per card of ``cards``). Params and GFLOPs come from the stored figures of a
    shipped card; other cards are built on the meta device (shapes only, no memory, no init cost)."""
    if cards is None:
        cards = registered_cards()[0]
    rows = []
    for card in cards:
        stats = card_stats(card, flops=flops)
        params = stats["params"]
        cached = [k for k in card.weights if cached_weight_path(card, k).is_file()]
        rows.append({
            "model": card.name,
            "family": card.family,
            "patch": card.patch_size,
            "params_M": round(params / 1e6, 2),
            "params_ok": card.params_expected is None or params == card.params_expected,
            "GFLOPs@224": round(stats["gflops"], 2) if flops and stats["gflops"] is not None else None,
            "feat_dim": card.feature_dim,
            "norm": card.normalization,
            "weights": ", ".join(card.weights) or "-",
            "cached": ", ".join(cached) or "no",
        })
    return rows


def render_rows(rows: list[dict[str, Any]], fmt: str = "table") -> str:
    """Render rows as a plain table, markdown, CSV or JSON."""
    if fmt == "json":
        return json.dumps(rows, indent=2)
    from tabulate import tabulate

    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        if rows:
            w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
        return buf.getvalue().rstrip()
    headers = list(rows[0]) if rows else []
    return tabulate([list(r.values()) for r in rows], headers=headers, tablefmt="github" if fmt == "md" else "simple")
