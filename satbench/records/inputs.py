"""What the backbone was fed, as one line for the terminal: the normalisation a run used and the input range it gives.

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


def input_line(record: dict[str, Any]) -> str:
    """``input: [0, 1] pixels, normalised with uc_merced (mean 0.482 0.488 0.449, std 0.116 0.102 0.103) ->
    range [-4.16, 5.05]``: pixels in [0, 1] minus the mean over the std, per channel."""
    norm = used_normalization(record)
    if norm is None:
        return "input: normalisation not recorded"
    mean, std = [float(x) for x in norm["mean"]], [float(x) for x in norm["std"]]
    if not mean or len(mean) != len(std) or any(s <= 0 for s in std):
        return f"input: normalisation {norm.get('name', '?')} recorded with unusable statistics"
    lo = min((0.0 - m) / s for m, s in zip(mean, std))
    hi = max((1.0 - m) / s for m, s in zip(mean, std))
    fmt = " ".join
    return (f"input: [0, 1] pixels, normalised with {norm.get('name', 'unnamed')} (mean {fmt(f'{m:.3f}' for m in mean)}, "
            f"std {fmt(f'{s:.3f}' for s in std)}) -> range [{lo:.2f}, {hi:.2f}]")
