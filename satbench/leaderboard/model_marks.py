"""Leaderboard marks for what a run's model did that the protocol's defaults do not say: the pooling when it is not
the protocol's CLS feature, input sizes a ``size_rule`` changed (patch-14 models under 16-px protocol sizes), and
features that collapsed, recorded with ``--allow-collapsed-features`` (:mod:`satbench.eval.feature_guard`)."""

from __future__ import annotations

from typing import Any


def _dict(node: Any, *keys: str) -> Any:
    for k in keys:
        node = node.get(k) if isinstance(node, dict) else None
    return node


def model_marks(rec: dict[str, Any]) -> list[str]:
    """``["pool=avg", "sizes 64->56 (size_rule floor)"]``-style marks of one record (empty when none apply)."""
    out: list[str] = []
    opts = _dict(rec, "extractor", "model_options")
    pool = opts.get("pool") if isinstance(opts, dict) else None
    if isinstance(pool, str) and pool != "cls":
        out.append(f"pool={pool}")
    entries = _dict(rec, "extra", "scale_entries")
    changed = [e for e in entries if isinstance(e, dict) and e.get("protocol_size") is not None] \
        if isinstance(entries, list) else []
    if changed:
        pairs = ", ".join(dict.fromkeys(f"{e['protocol_size']}->{e.get('size')}" for e in changed))
        rules = ", ".join(dict.fromkeys(str(e.get("size_rule")) for e in changed))
        out.append(f"sizes {pairs} px (size_rule {rules}, not the protocol's)")
    if _dict(rec, "features", "collapsed") is True:
        out.append("COLLAPSED FEATURES (recorded with --allow-collapsed-features)")
    return out


__all__ = ["model_marks"]
