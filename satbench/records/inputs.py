"""What the backbone was fed: the normalisation a run used and the input range it gives, as one line for the terminal
(:func:`input_line`) and as the record's ``extractor.input`` (:func:`input_range`, set by
:func:`satbench.records.results.make_record` for every task).

kNN on a folder uses the folder's computed normalisation, cached-linear the model's; both are recorded, and every task
prints this line under its table (``satbench run``), so the choice is never a surprise.
"""

from __future__ import annotations

from typing import Any, Optional


def used_normalization(record: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The normalisation a record says its images went through (extractor, then dataset, then extra), or None."""
    for section, key in (("extractor", "normalization"), ("dataset", "normalization_used"),
                         ("extra", "normalization"), ("extra", "normalization_computed")):
        norm = (record.get(section) or {}).get(key)
        if isinstance(norm, dict) and isinstance(norm.get("mean"), list) and isinstance(norm.get("std"), list):
            return norm
    return None


def _range(norm: dict[str, Any]) -> Optional[tuple[list[float], list[float], float, float]]:
    """``(mean, std, lo, hi)``: pixels in [0, 1] minus the mean over the std, per channel (None: unusable stats)."""
    try:
        mean, std = [float(x) for x in norm["mean"]], [float(x) for x in norm["std"]]
    except (TypeError, ValueError):
        return None
    if not mean or len(mean) != len(std) or any(not s > 0 for s in std):
        return None
    return (mean, std, min((0.0 - m) / s for m, s in zip(mean, std)),
            max((1.0 - m) / s for m, s in zip(mean, std)))


def input_range(extractor: dict[str, Any]) -> Optional[dict[str, Any]]:
    """The record's statement of the input value range the model saw, from its extractor section:
    ``{"pixels": [0, 1], "normalization": "uc_merced", "range": [-4.16, 5.05],
    "text": "[0, 1] then uc_merced mean/std -> [-4.16, 5.05]"}``. Segmentation feeds mmseg 0-255 pixels with the
    statistics x 255 (``mean_255``), the same range. None when the section has no usable normalisation."""
    norm = extractor.get("normalization")
    if not isinstance(norm, dict):
        return None
    got = _range(norm)
    if got is None:
        return None
    lo, hi = round(got[2], 4), round(got[3], 4)
    name = str(norm.get("name") or "unnamed")
    if "mean_255" in extractor:
        pixels, then = [0, 255], f"{name} mean/std x 255"
    else:
        pixels, then = [0, 1], f"{name} mean/std"
    return {"pixels": pixels, "normalization": name, "range": [lo, hi],
            "text": f"[{pixels[0]}, {pixels[1]}] then {then} -> [{lo:.2f}, {hi:.2f}]"}


def input_line(record: dict[str, Any]) -> str:
    """``input: [0, 1] pixels, normalised with uc_merced (mean 0.482 0.488 0.449, std 0.116 0.102 0.103) ->
    range [-4.16, 5.05]``: pixels in [0, 1] minus the mean over the std, per channel."""
    norm = used_normalization(record)
    if norm is None:
        return "input: normalisation not recorded"
    got = _range(norm)
    if got is None:
        return f"input: normalisation {norm.get('name', '?')} recorded with unusable statistics"
    mean, std, lo, hi = got
    fmt = " ".join
    return (f"input: [0, 1] pixels, normalised with {norm.get('name', 'unnamed')} (mean {fmt(f'{m:.3f}' for m in mean)}, "
            f"std {fmt(f'{s:.3f}' for s in std)}) -> range [{lo:.2f}, {hi:.2f}]")
