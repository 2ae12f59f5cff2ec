"""What differs between two records, key by key (``satbench results diff``, and ``satbench compare``'s refusal)."""

from __future__ import annotations

import json
from typing import Any, Iterable, Optional

#: the sections ``results diff`` compares by default (what a run *is*, not what it found)
DIFF_SECTIONS = ("task", "model", "protocol", "dataset", "weights", "extractor", "provenance")


def flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys; lists stay values."""
    out: dict[str, Any] = {}
    if isinstance(node, dict):
        if not node and prefix:
            out[prefix] = {}
        for k, v in node.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    else:
        out[prefix] = node
    return out


def diff_records(a: dict[str, Any], b: dict[str, Any],
                 sections: Iterable[str] = DIFF_SECTIONS) -> list[tuple[str, Any, Any]]:
    """``(dotted key, value in a, value in b)`` for every key whose value differs, in ``sections`` order.
    Absent keys compare as ``None``; the record ids, file paths and descriptions are ignored."""
    out = []
    ignore = ("protocol.content.description",)
    for s in sections:
        fa = flatten(a.get(s), s) if isinstance(a.get(s), dict) else {s: a.get(s)}
        fb = flatten(b.get(s), s) if isinstance(b.get(s), dict) else {s: b.get(s)}
        for k in list(dict.fromkeys(list(fa) + list(fb))):
            if k in ignore:
                continue
            va, vb = fa.get(k), fb.get(k)
            if {type(va), type(vb)} == {dict, type(None)} and not (va or vb) and \
                    any(x.startswith(k + ".") for x in (fb if va == {} else fa)):
                continue  # an empty section on one side: its keys on the other side are listed one by one
            if json.dumps(va, sort_keys=True, default=str) != json.dumps(vb, sort_keys=True, default=str):
                out.append((k, va, vb))
    return out


def protocol_difference(a: dict[str, Any], b: dict[str, Any], limit: int = 3) -> Optional[str]:
    """The protocol settings that differ, as ``size_multiple 16 vs 14; k [10, 20] vs [20]`` (at most ``limit``, then
    ``and N more``), from :func:`diff_records` over ``protocol.params``; None when no parameter differs."""
    rows = [(k, va, vb) for k, va, vb in diff_records(a, b, ("protocol",))
            if k.startswith("protocol.params.") or k.startswith("protocol.content.")]
    if not rows:
        return None

    def show(v: Any) -> str:
        return "-" if v is None else json.dumps(v, default=str) if isinstance(v, (list, dict)) else str(v)

    def label(key: str) -> str:
        for prefix in ("protocol.content.params.", "protocol.params.", "protocol.content."):
            if key.startswith(prefix):
                return key[len(prefix):]
        return key

    parts = [f"{label(k)} {show(va)} vs {show(vb)}" for k, va, vb in rows[:limit]]
    more = f" and {len(rows) - limit} more (satbench results diff A B)" if len(rows) > limit else ""
    return "; ".join(parts) + more
