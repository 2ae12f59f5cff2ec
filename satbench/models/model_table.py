"""The registry as rows: params (counted as the paper counts), GFLOPs at 224, feature dim, weights cached."""

from __future__ import annotations

import json
from typing import Any

from satbench.models.backbones import FAMILIES, count_params, linear_conv_gflops
from satbench.models.registry import list_cards
from satbench.models.weights import cached_weight_path


def model_rows(flops: bool = True) -> list[dict[str, Any]]:
    """One row per registered card. Models are built on the meta device (shapes only, no memory, no init cost):
    parameter counts and the paper-style GFLOPs need nothing else."""
    import torch

    rows = []
    for card in list_cards():
        with torch.device("meta"):
            model = FAMILIES[card.family].build(card, **card.options)
        params = count_params(model, exclude=card.params_exclude)
        cached = [k for k in card.weights if cached_weight_path(card, k).is_file()]
        rows.append({
            "model": card.name,
            "family": card.family,
            "patch": card.patch_size,
            "params_M": round(params / 1e6, 2),
            "params_ok": card.params_expected is None or params == card.params_expected,
            "GFLOPs@224": round(linear_conv_gflops(model, card.img_size), 2) if flops else None,
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
    import pandas as pd
    from tabulate import tabulate

    df = pd.DataFrame(rows)
    if fmt == "csv":
        return df.to_csv(index=False).rstrip()
    return tabulate(df, headers="keys", tablefmt="github" if fmt == "md" else "simple", showindex=False)
