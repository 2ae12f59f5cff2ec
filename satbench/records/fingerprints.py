"""Identical features under different weights, found from records alone.

Every record of a task that extracts features carries ``features.views[<view>].fingerprint``, a sha256 of its
quantised val features with the split and view they come from (:func:`satbench.eval.feature_guard.fingerprint`).
Two records whose weights differ (``weights.tensors_sha256``, else ``weights.sha256``, else the random init's model
and seed) but that share a fingerprint computed exactly the same features on the same images: the same weights under
two identities, a checkpoint that did not load (both runs used one init), or a wrapper that ignores its weights.
:func:`clashes` finds them; ``satbench leaderboard``, ``satbench results ls`` and every run that writes a record
(:func:`satbench.api.run`, against the records already in its results folder) print :func:`clash_lines`.

Equal fingerprints prove identical features (up to the quantisation grid); features that differ only at the
float-noise level (another device, bf16) may fingerprint differently, so a clash is never missed for bit-identical
features but different fingerprints prove nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

_SHA = re.compile(r"^[0-9a-f]{64}$")


def _get(node: Any, *keys: str) -> Any:
    for k in keys:
        node = node.get(k) if isinstance(node, dict) else None
    return node


def features_fingerprints(rec: dict[str, Any]) -> dict[str, str]:
    """``{view: fingerprint}`` of a record (untrusted: anything that is not a 64-hex string is left out)."""
    views = _get(rec, "features", "views")
    if not isinstance(views, dict):
        return {}
    out = {}
    for key, v in views.items():
        fp = v.get("fingerprint") if isinstance(v, dict) else None
        if isinstance(fp, str) and _SHA.match(fp):
            out[str(key)] = fp
    return out


def weights_identity(rec: dict[str, Any]) -> str:
    """What the record's weights are: their tensors' sha256, else the file's, else ``random:<model>:seed<N>``, else
    ``unknown:<path>``."""
    w = rec.get("weights") if isinstance(rec.get("weights"), dict) else {}
    for key in ("tensors_sha256", "sha256"):
        if isinstance(w.get(key), str) and w[key]:
            return str(w[key])
    if w.get("source") == "random":
        return f"random:{rec.get('model')}:seed{w.get('seed')}"
    return f"unknown:{w.get('path')}"


@dataclass(frozen=True)
class Clash:
    """Records with one features fingerprint and more than one weights identity."""

    fingerprint: str
    view: str
    records: tuple[dict[str, Any], ...]

    @property
    def identities(self) -> list[str]:
        return list(dict.fromkeys(weights_identity(r) for r in self.records))


def clashes(records: Iterable[dict[str, Any]]) -> list[Clash]:
    """Every fingerprint shared by records of different weights identities (aggregates of several runs skipped)."""
    groups: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for rec in records:
        if _get(rec, "extra", "aggregate_of"):
            continue
        for view, fp in features_fingerprints(rec).items():
            groups.setdefault(fp, (view, []))[1].append(rec)
    out = []
    for fp, (view, recs) in groups.items():
        if len({weights_identity(r) for r in recs}) > 1:
            out.append(Clash(fp, view, tuple(recs)))
    return out


def _label(rec: dict[str, Any]) -> str:
    ident = weights_identity(rec)
    short = ident[:12] if _SHA.match(ident) else ident
    where = rec.get("_path") or f"record {rec.get('id', '?')}"
    return f"{rec.get('model', '?')} (weights {short}) in {where}"


def clash_lines(found: Iterable[Clash], only_involving: Iterable[dict[str, Any]] = ()) -> list[str]:
    """One warning line per clash (``only_involving``: only clashes with one of these records, by id)."""
    ids = {r.get("id") for r in only_involving}
    lines = []
    seen: set[tuple[str, ...]] = set()
    for c in found:
        if ids and not any(r.get("id") in ids for r in c.records):
            continue
        by_identity: dict[str, dict[str, Any]] = {}
        for r in c.records:
            by_identity.setdefault(weights_identity(r), r)
        key = tuple(sorted(by_identity))
        if key in seen:  # the same records share the fingerprints of several views: one line
            continue
        seen.add(key)
        lines.append(f"identical features under different weights: {' and '.join(map(_label, by_identity.values()))} "
                     f"(view {c.view}, fingerprint {c.fingerprint[:12]}): the same weights under two identities, or "
                     f"weights that did not load; their numbers are not two models'")
    return lines
