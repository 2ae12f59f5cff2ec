"""What a result record says about itself: its label parts, its settings, and why it may not be compared to a paper.

Only the record is read (never the data package): ``dataset.is_subset`` / ``dataset.train_equals_val`` when present,
small fallbacks for older records without them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional

from satbench.errors import ResultsError
from satbench.records.provenance import source_label
from satbench.records.splits import DEFAULT_FAMILY, split_family

BUNDLED_SUBSETS = ("ucm-mini",)  # fallback for records written before dataset.is_subset existed
OFFICIAL_SPLIT_OK = ("exact", "modulo-extension")


@dataclass(frozen=True)
class Exclusion:
    """Why a run gets no delta to a paper: ``code`` (stable, for tests and CSV) and a short text."""

    code: str
    text: str


# ----------------------------------------------------------------------------------------------------------------------
# Reading fields (records are untrusted: wrong types are an error naming the file and key)
# ----------------------------------------------------------------------------------------------------------------------
def where(rec: dict[str, Any]) -> str:
    return str(rec.get("_path") or f"record {rec.get('id', '?')}")


def section(rec: dict[str, Any], key: str) -> dict[str, Any]:
    """``rec[key]`` as a mapping (missing -> ``{}``; another type -> :class:`ResultsError`)."""
    v = rec.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ResultsError(f"{where(rec)}: {key} is {type(v).__name__}, expected a mapping")
    return v


def text(rec: dict[str, Any], *keys: str, default: str = "") -> str:
    """A string field (``text(rec, "dataset", "name")``); numbers are accepted as text, other types are errors."""
    node: Any = rec
    for k in keys:
        node = node.get(k) if isinstance(node, dict) else None
        if node is None:
            return default
    if isinstance(node, bool) or not isinstance(node, (str, int, float)):
        raise ResultsError(f"{where(rec)}: {'.'.join(keys)} is {type(node).__name__}, expected a string")
    return str(node)


def number(rec: dict[str, Any], *keys: str) -> Optional[float]:
    """A finite number field, ``None`` when absent; anything else (text, bool, NaN) is an error naming the key."""
    node: Any = rec
    for k in keys:
        node = node.get(k) if isinstance(node, dict) else None
        if node is None:
            return None
    if isinstance(node, bool) or not isinstance(node, (int, float)) or not math.isfinite(node):
        raise ResultsError(f"{where(rec)}: {'.'.join(keys)} is {node!r}, expected a finite number")
    return float(node)


def interval(rec: dict[str, Any], metric: str) -> Optional[tuple[float, float]]:
    """``summary.ci[metric]`` as ``(lo, hi)`` or ``None``."""
    ci = section(rec, "summary").get("ci")
    if not isinstance(ci, dict) or ci.get(metric) is None:
        return None
    v = ci[metric]
    if (not isinstance(v, (list, tuple)) or len(v) != 2 or
            not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)):
        raise ResultsError(f"{where(rec)}: summary.ci.{metric} is {v!r}, expected [lo, hi]")
    return float(v[0]), float(v[1])


def scale_interval(rec: dict[str, Any], scale: str) -> Optional[tuple[float, float]]:
    """``summary.ci.top1_per_scale[scale]`` as ``(lo, hi)`` or ``None``."""
    ci = section(rec, "summary").get("ci")
    per = ci.get("top1_per_scale") if isinstance(ci, dict) else None
    if not isinstance(per, dict) or per.get(scale) is None:
        return None
    v = per[scale]
    if (not isinstance(v, (list, tuple)) or len(v) != 2 or
            not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)):
        raise ResultsError(f"{where(rec)}: summary.ci.top1_per_scale.{scale} is {v!r}, expected [lo, hi]")
    return float(v[0]), float(v[1])


def seeds(rec: dict[str, Any]) -> Optional[dict[str, Any]]:
    s = section(rec, "summary").get("seeds")
    return s if isinstance(s, dict) else None


def draws(rec: dict[str, Any]) -> Optional[dict[str, Any]]:
    d = section(rec, "summary").get("draws")
    return d if isinstance(d, dict) else None


def spread(rec: dict[str, Any]) -> Optional[tuple[Optional[float], int, str]]:
    """``(sample std or None, n, "seeds" | "draws")`` of an aggregate record (``summary.seeds`` / ``summary.draws``)."""
    for kind, agg in (("seeds", seeds(rec)), ("draws", draws(rec))):
        if agg is None:
            continue
        n, std = agg.get("n"), agg.get("std")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ResultsError(f"{where(rec)}: summary.{kind}.n is {n!r}, expected a positive integer")
        if std is not None and (isinstance(std, bool) or not isinstance(std, (int, float)) or not math.isfinite(std)):
            raise ResultsError(f"{where(rec)}: summary.{kind}.std is {std!r}, expected a finite number or null")
        return (None if std is None else float(std)), n, kind
    return None


# ----------------------------------------------------------------------------------------------------------------------
# Repeated runs (satbench.eval.repeats): the aggregate stands for its members
# ----------------------------------------------------------------------------------------------------------------------
GROUP_KEYS = ("seed_group", "draw_group")


def _group_id(rec: dict[str, Any], key: str) -> Optional[str]:
    g = section(rec, "extra").get(key)
    gid = g.get("id") if isinstance(g, dict) else None
    return gid if isinstance(gid, str) and gid else None


def aggregate_group(rec: dict[str, Any]) -> Optional[tuple[str, str]]:
    """``(group key, id)`` of an aggregate record (``extra.aggregate_of`` set), else None."""
    extra = section(rec, "extra")
    kind = extra.get("aggregate_of")
    key = {"seeds": "seed_group", "draws": "draw_group"}.get(kind) if isinstance(kind, str) else None
    gid = _group_id(rec, key) if key else None
    return (key, gid) if key and gid else None


def group_member(rec: dict[str, Any]) -> Optional[tuple[str, str]]:
    """``(group key, id)`` of a member run of a seeds / draws group (not the aggregate), else None."""
    if section(rec, "extra").get("aggregate_of"):
        return None
    for key in GROUP_KEYS:
        gid = _group_id(rec, key)
        if gid:
            return key, gid
    return None


def without_aggregated_members(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``records`` less the member runs whose aggregate record is among them (the table shows the aggregate: mean,
    spread and count; the members stay readable with ``satbench results`` and ``compare``). Members of a group whose
    aggregate is missing (an interrupted ``--seeds`` run) are shown as ordinary runs."""
    groups = {g for g in (aggregate_group(r) for r in records) if g is not None}
    return [r for r in records if group_member(r) not in groups]


# ----------------------------------------------------------------------------------------------------------------------
# Train subsets (--train-fraction / --shots)
# ----------------------------------------------------------------------------------------------------------------------
def train_subset(rec: dict[str, Any]) -> Optional[dict[str, Any]]:
    """``dataset.train_subset`` (a mapping) or None; another type is an error naming the key."""
    sub = section(rec, "dataset").get("train_subset")
    if sub is None:
        return None
    if not isinstance(sub, dict):
        raise ResultsError(f"{where(rec)}: dataset.train_subset is {type(sub).__name__}, expected a mapping")
    return sub


def subset_label(rec: dict[str, Any]) -> Optional[str]:
    """``train 10%`` or ``5 shots/class`` for a run on a train subset (``+ draw d`` for a single draw of several)."""
    sub = train_subset(rec)
    if sub is None:
        return None
    kind = sub.get("kind")
    if kind == "fraction":
        f = number(rec, "dataset", "train_subset", "fraction")
        what = f"train {100 * f:g}%" if f is not None else "train subset"
    elif kind == "shots":
        n = number(rec, "dataset", "train_subset", "shots")
        what = f"{int(n)} shots/class" if n is not None else "train subset"
    else:
        what = "train subset"
    return what


def full_train_split(rec: dict[str, Any]) -> bool:
    """False when the run fitted on a strict subset of its train split."""
    sub = train_subset(rec)
    if sub is None:
        return True
    n, parent = sub.get("n"), sub.get("n_parent")
    return isinstance(n, int) and isinstance(parent, int) and n == parent


def protocol_params(rec: dict[str, Any]) -> dict[str, Any]:
    """The effective protocol parameters (``protocol.content.params``, or ``protocol.params`` for segmentation)."""
    p = section(rec, "protocol")
    content = p.get("content")
    params = content.get("params") if isinstance(content, dict) else p.get("params")
    return params if isinstance(params, dict) else {}


# ----------------------------------------------------------------------------------------------------------------------
# Labels
# ----------------------------------------------------------------------------------------------------------------------
def weights_identity(rec: dict[str, Any]) -> str:
    """The weights' identity: ``weights.tensors_sha256`` (the same tensors in any file format), else the file's
    ``weights.sha256`` (records written before tensors_sha256 existed), else ``""``."""
    return text(rec, "weights", "tensors_sha256") or text(rec, "weights", "sha256")


def weights_tag(rec: dict[str, Any]) -> str:
    """``random-seed<N>`` or the prefix of :func:`weights_identity` (the run-grouping key)."""
    w = section(rec, "weights")
    if w.get("source") == "random":
        return f"random-seed{w.get('seed')}"
    sha = weights_identity(rec)
    return sha[:12] if sha else "unhashed:" + (text(rec, "weights", "path") or "?")  # never a truncated path


def with_tensor_identities(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``records`` where a record without ``weights.tensors_sha256`` (written before it existed) whose file sha256 another
    record pairs with a tensors sha256 gets that one (in a copy; the record itself is not changed): an old and a new
    record of the same file stay one leaderboard row. A file sha256 paired with two tensor hashes is left alone."""
    pairs: dict[str, set[str]] = {}
    for r in records:
        t, f = text(r, "weights", "tensors_sha256"), text(r, "weights", "sha256")
        if t and f:
            pairs.setdefault(f, set()).add(t)
    out = []
    for r in records:
        f = text(r, "weights", "sha256")
        known = pairs.get(f) if f and not text(r, "weights", "tensors_sha256") else None
        if known and len(known) == 1 and section(r, "weights").get("source") != "random":
            r = {**r, "weights": {**section(r, "weights"), "tensors_sha256": next(iter(known))}}
        out.append(r)
    return out


def weights_label(rec: dict[str, Any]) -> str:
    """What a reader must know about the weights: ``random weights (seed 0)``, ``weights ab12cd34ef56`` or, without a
    sha256, ``weights <file name> (no sha256)``."""
    w = section(rec, "weights")
    if w.get("source") == "random":
        return f"random weights (seed {w.get('seed')})"
    if not text(rec, "weights", "sha256"):
        file_name = re.split(r"[\\/]", text(rec, "weights", "path"))[-1] or "?"
        return f"weights {file_name} (no sha256)"
    return f"weights {weights_tag(rec)}"


def protocol_name(rec: dict[str, Any]) -> str:
    return text(rec, "protocol", "name")


def protocol_dataset(rec: dict[str, Any]) -> str:
    """The benchmark dataset the run's dataset belongs to (``uc_merced`` for ``ucm-mini``)."""
    return text(rec, "dataset", "protocol_dataset") or text(rec, "dataset", "name")


def is_subset(rec: dict[str, Any]) -> bool:
    """``dataset.is_subset``; for older records: a bundled subset name, or a name other than the protocol dataset."""
    d = section(rec, "dataset")
    if isinstance(d.get("is_subset"), bool):
        return d["is_subset"]
    name = text(rec, "dataset", "name")
    return name in BUNDLED_SUBSETS or name != protocol_dataset(rec)


def train_equals_val(rec: dict[str, Any]) -> bool:
    """``dataset.train_equals_val``; for older records: identical train and val split hashes."""
    d = section(rec, "dataset")
    if isinstance(d.get("train_equals_val"), bool):
        return d["train_equals_val"]
    h = d.get("split_hashes")
    return isinstance(h, dict) and bool(h.get("train")) and h.get("train") == h.get("val")


def family(rec: dict[str, Any]) -> str:
    """The record's split family (``satdino`` unless ``dataset.split_family`` names another); a non-string is an error
    naming the key."""
    text(rec, "dataset", "split_family")  # type check
    return split_family(rec)


def official_split(rec: dict[str, Any]) -> bool:
    """False when the record says a split differs from the official one (absent: nothing known against it)."""
    official = section(rec, "dataset").get("official_split")
    return not isinstance(official, dict) or all(v in OFFICIAL_SPLIT_OK for v in official.values())


@lru_cache(maxsize=None)
def _default_params(name: str) -> Optional[dict[str, Any]]:
    """The shipped protocol's params (``tasks/``), or None for a protocol satbench does not ship."""
    from satbench.config.protocols import load_protocol

    try:
        return dict(load_protocol(name).params)
    except Exception:  # an unknown or unreadable protocol name: no defaults to compare with
        return None


def overrides(rec: dict[str, Any], recipe_switches: tuple[str, ...] = ()) -> dict[str, Any]:
    """Parameters that differ from the named protocol: recorded ``protocol.overrides``, effective params that differ
    from the shipped protocol file, and set ``recipe_switches`` (e.g. segmentation's ``cfg_options``, ``frozen``)."""
    p = section(rec, "protocol")
    out: dict[str, Any] = {}
    params = protocol_params(rec)
    name = protocol_name(rec)
    defaults = _default_params(name) if name and isinstance(p.get("content"), dict) else None
    if defaults is not None:
        for k, v in params.items():
            if defaults.get(k) != v:
                out[k] = v
    ov = p.get("overrides")
    if isinstance(ov, dict):
        out.update(ov)
    for k in recipe_switches:
        if params.get(k) not in (None, False, {}, [], ""):
            out[k] = params[k]
    return out


def reported_k(rec: dict[str, Any]) -> Optional[int]:
    """The k of the headline kNN number: ``summary.k``, else ``metrics.k_report``, else the protocol's ``k_report``."""
    for keys in (("summary", "k"), ("metrics", "k_report")):
        v = number(rec, *keys)
        if v is not None:
            return int(v)
    v = protocol_params(rec).get("k_report")
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else None


def _fmt_value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ",".join(_fmt_value(x) for x in v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_fmt_value(x)}" for k, x in v.items()) + "}"
    return str(v)


SETTING_NAMES = {"k_report": "k", "k": "k list"}


def settings(rec: dict[str, Any], recipe_switches: tuple[str, ...] = (), full_iters: Optional[int] = None) -> list[str]:
    """What this run did differently from its protocol's defaults, e.g. ``["k=5", "k list=5,10", "scales=1.0"]``.

    The reported k is shown whenever it differs from the shipped protocol's ``k_report`` (also without overrides)."""
    ov = overrides(rec, recipe_switches)
    out = []
    k = reported_k(rec)
    defaults = _default_params(protocol_name(rec)) if protocol_name(rec) else None
    default_k = (defaults or {}).get("k_report")
    if k is not None and ("k_report" in ov or (default_k is not None and k != default_k)):
        out.append(f"k={k}")
    for key, v in ov.items():
        if key == "k_report":
            continue
        out.append(f"{SETTING_NAMES.get(key, key)}={_fmt_value(v)}")
    iters = _iters(rec, full_iters)
    if iters is not None:
        out.append(f"{iters[0]} of {iters[1]} iters")
    if train_equals_val(rec):
        out.append("train = val")
    if family(rec) != DEFAULT_FAMILY:
        out.append(f"{family(rec)} split")
    sub = subset_label(rec)
    if sub is not None:
        out.append(sub)
    s = seeds(rec)
    if s and isinstance(s.get("n"), int):
        out.append(f"{s['n']} seeds")
    d = draws(rec)
    if d and isinstance(d.get("n"), int):
        out.append(f"{d['n']} draws")
    elif sub is not None and group_member(rec) is not None:
        out.append(f"draw {train_subset(rec).get('draw')}")
    from satbench.leaderboard.model_marks import model_marks

    out.extend(model_marks(rec))
    return out


def _iters(rec: dict[str, Any], full_iters: Optional[int]) -> Optional[tuple[int, int]]:
    """``(iters, recipe iters)`` when the run trained for fewer iterations than its recipe, else None."""
    if full_iters is None:
        return None
    params = protocol_params(rec)
    recipe = params.get("recipe_iters", full_iters)
    iters = params.get("iters")
    if isinstance(iters, int) and isinstance(recipe, int) and iters < recipe:
        return iters, recipe
    return None


def exclusions(rec: dict[str, Any], paper_protocol: str, *, recipe_switches: tuple[str, ...] = (),
               full_iters: Optional[int] = None) -> list[Exclusion]:
    """Every reason this run is not like for like with a paper number produced under ``paper_protocol`` (a regex
    matched against the run's protocol name). Empty list: the run gets a delta."""
    out = []
    if section(rec, "weights").get("source") == "random":
        out.append(Exclusion("random-weights", "random weights"))
    elif not text(rec, "weights", "sha256"):
        out.append(Exclusion("unhashed-weights", "weights without a sha256 (not known to be the released ones)"))
    name = protocol_name(rec)
    if not re.fullmatch(paper_protocol, name):
        out.append(Exclusion("protocol", f"protocol {name or '?'} is not the paper's"))
    ov = overrides(rec, recipe_switches)
    if ov:
        out.append(Exclusion("overrides", "protocol overrides (" + ", ".join(sorted(ov)) + ")"))
    if is_subset(rec):
        out.append(Exclusion("subset", f"{text(rec, 'dataset', 'name')} is a subset of {protocol_dataset(rec)}"))
    if family(rec) != DEFAULT_FAMILY:
        out.append(Exclusion("split-family", f"{family(rec)} splits (the papers use SatDINO's)"))
    elif not official_split(rec):
        out.append(Exclusion("split", "not the official split"))
    iters = _iters(rec, full_iters)
    if iters is not None:
        out.append(Exclusion("short-schedule", f"{iters[0]} of the recipe's {iters[1]} iterations"))
    if train_equals_val(rec):
        out.append(Exclusion("train-equals-val", "train = val"))
    if not full_train_split(rec):
        out.append(Exclusion("train-subset", f"fitted on a train subset ({subset_label(rec)})"))
    return out


def provenance_line(rec: dict[str, Any]) -> dict[str, str]:
    """The facts a cell links to: record file, id, date, protocol hash, weights sha256 (the file's) and the tensors'
    sha256, commit, and the run's calibration errors (classification records that have them)."""
    from satbench.stats.formatting import calibration_line

    summary = rec.get("summary") if isinstance(rec.get("summary"), dict) else {}
    return {"file": where(rec), "id": text(rec, "id"), "date": text(rec, "provenance", "date"),
            "protocol": protocol_name(rec), "protocol_hash": text(rec, "protocol", "hash"),
            "weights": text(rec, "weights", "sha256") or weights_label(rec),
            "tensors": text(rec, "weights", "tensors_sha256"),
            "commit": source_label(text(rec, "provenance", "git_commit"), text(rec, "provenance", "satbench_version")),
            "calibration": calibration_line(summary) or ""}
