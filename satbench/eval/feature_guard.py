"""The features guard: test features that are not finite, or that have collapsed, never become a silent result.

The peers' worst bugs left the models' features almost constant across images (an input divided by 255 twice,
double normalisation, weights that did not load) or NaN, and the tables still got a number. Every task that
extracts features checks the features of its test (val) images, one policy for all (kNN, the cached linear probe,
the linear probe and fine-tuning; ``satbench extract`` on the features it writes, the check in its sidecar's
``features_check``; segmentation on the backbone's patch features of the first val tiles before the decoder trains,
:mod:`satbench.seg.feature_sample`, one row per patch):

* **NaN or infinite features** (any image, any split the run extracted): the run fails with one line; nothing is
  recorded. No option allows it: no number computed from them means anything.
* **Collapsed features**: the run fails with one line, unless ``--allow-collapsed-features``
  (``allow_collapsed_features=True`` in :func:`satbench.api.run`) is given; then the record is written with
  ``features.collapsed: true``, a warning is printed and the leaderboard marks the row. A failure is the default
  because a collapsed model's table entry is the peers' bug itself (a plausible low number); the option is for the
  one who studies a collapse on purpose.

The statistic is scale-free and per dimension: ``std_d / rms_d`` across the test images, in [0, 1] (0: the same
value on every image; 1: zero mean). A dimension is *flat* below :data:`FLAT_DIM_REL_STD`; the features have
collapsed when more than :data:`COLLAPSED_DIM_FRACTION` of the dimensions are flat. Measured on the bundled
ucm-mini val images (84, 64 px and the 4 kNN scales; ``bench``-free, see the tests): random-init ViTs (SatDINO
ViT-S/16, timm ViT-S/16, SatMAE and Scale-MAE ViT-L/16) have a median ``std/rms`` of 0.60-0.90 and a minimum of
0.13-0.42, 13-40x above the threshold, so ``--weights random`` never trips it; the same models on pixels divided by
255 twice have a median of 0.0006-0.0009 (caught); on 0-255 pixels fed as [0, 1] a median of 0.16-0.18 (not a
collapse: those features vary, and the input-range line of every record is the guard for that). Per-dimension RMS
rather than one global scale, so that a few large constant dimensions (a trained ViT's "massive activations") do
not make the other dimensions look flat.

These values are named constants recorded in every record (``features.check``), not protocol keys: they change no
number of a run that passes, so no protocol hash moves.

The record's ``features.views[<view>].fingerprint`` is a sha256 of the quantised test features (with the split and
view they come from): :mod:`satbench.records.fingerprints` flags two records with different weights whose features
are identical.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from satbench.errors import SatbenchError

log = logging.getLogger("satbench")

#: Version of the check and fingerprint below (recorded; a change of either is a new version).
FEATURE_CHECK_VERSION = 1
#: A dimension is flat when its std across the test images is below this fraction of its RMS (``std_d / rms_d``).
FLAT_DIM_REL_STD = 1e-2
#: The features have collapsed when more than this fraction of their dimensions are flat.
COLLAPSED_DIM_FRACTION = 0.5
#: Fingerprint grid: each feature is rounded to 1/FINGERPRINT_STEPS of the features' overall RMS before hashing.
FINGERPRINT_STEPS = 64
#: The flag that lets a collapsed run be recorded (named in the error line).
ALLOW_FLAG = "--allow-collapsed-features"


class FeatureError(SatbenchError):
    """Test features that are NaN / infinite, or collapsed (without the option that allows recording them)."""


def check_settings() -> dict[str, Any]:
    """What the guard checked, as recorded in ``features.check``."""
    return {"version": FEATURE_CHECK_VERSION, "statistic": "per-dimension std / rms across the val images",
            "flat_dim_rel_std": FLAT_DIM_REL_STD, "collapsed_dim_fraction": COLLAPSED_DIM_FRACTION,
            "fingerprint": f"sha256 of round(features / rms x {FINGERPRINT_STEPS}) as int32, with split and view"}


@dataclass
class FeatureMoments:
    """Streaming per-dimension sums of a feature stream (for features never held whole: the linear probe's val
    pass, sharded under torchrun; :meth:`as_tensor` / :meth:`from_tensor` carry them through an all-reduce)."""

    n: int = 0
    nonfinite: int = 0
    s1: Optional[np.ndarray] = None
    s2: Optional[np.ndarray] = None

    def add(self, feats: Any) -> None:
        """Add a batch ``[B, D]`` (a tensor or an array); rows with a NaN / inf are counted, not summed."""
        x = feats.detach().float().cpu().numpy() if hasattr(feats, "detach") else np.asarray(feats)
        x = x.astype(np.float64, copy=False).reshape(len(x), -1)
        ok = np.isfinite(x).all(axis=1)
        self.nonfinite += int((~ok).sum())
        x = x[ok]
        if self.s1 is None:
            self.s1, self.s2 = np.zeros(x.shape[1]), np.zeros(x.shape[1])
        self.n += len(x)
        self.s1 += x.sum(axis=0)
        self.s2 += (x * x).sum(axis=0)

    def as_tensor(self, dim: int) -> Any:
        import torch

        s1 = self.s1 if self.s1 is not None else np.zeros(dim)
        s2 = self.s2 if self.s2 is not None else np.zeros(dim)
        return torch.from_numpy(np.concatenate([[self.n, self.nonfinite], s1, s2]).astype(np.float64))

    @classmethod
    def from_tensor(cls, t: Any) -> "FeatureMoments":
        a = t.cpu().numpy().astype(np.float64)
        d = (len(a) - 2) // 2
        return cls(n=int(a[0]), nonfinite=int(a[1]), s1=a[2:2 + d].copy(), s2=a[2 + d:].copy())

    def stats(self) -> dict[str, Any]:
        """``{"n", "dims", "nonfinite_images", "flat_dims", "median_rel_std", "min_rel_std", "collapsed"}``
        (``collapsed`` None when fewer than 2 finite images: nothing to judge)."""
        dims = 0 if self.s1 is None else int(len(self.s1))
        out: dict[str, Any] = {"n": self.n + self.nonfinite, "dims": dims, "nonfinite_images": self.nonfinite}
        if self.n < 2 or dims == 0:
            return {**out, "flat_dims": None, "median_rel_std": None, "min_rel_std": None, "collapsed": None}
        mean_sq = self.s2 / self.n
        var = np.maximum(mean_sq - (self.s1 / self.n) ** 2, 0.0)
        rms = np.sqrt(mean_sq)
        rel = np.divide(np.sqrt(var), rms, out=np.zeros(dims), where=rms > 0)  # an all-zero dimension is flat
        rel = np.minimum(rel, 1.0)  # rounding can put a zero-mean dimension a hair above 1
        flat = int((rel < FLAT_DIM_REL_STD).sum())
        return {**out, "flat_dims": flat, "median_rel_std": round(float(np.median(rel)), 6),
                "min_rel_std": round(float(rel.min()), 6), "collapsed": flat > COLLAPSED_DIM_FRACTION * dims}


def array_stats(feats: np.ndarray) -> dict[str, Any]:
    """:meth:`FeatureMoments.stats` of a whole ``[n, D]`` array."""
    m = FeatureMoments()
    if len(feats):
        m.add(feats)
    elif feats.ndim == 2:
        m.s1, m.s2 = np.zeros(feats.shape[1]), np.zeros(feats.shape[1])
    return m.stats()


def fingerprint(feats: np.ndarray, *, split_sha256: str, view: Any) -> str:
    """sha256 of ``feats`` rounded to 1/:data:`FINGERPRINT_STEPS` of their RMS (int32, little-endian), after a header
    naming the shape, the split file and the view. Equal for identical features of the same images and view; features
    that differ at the float-noise level (another device, bf16, another batch size) may round differently, so equal
    fingerprints prove identical features while different ones prove nothing."""
    x = np.asarray(feats, dtype=np.float64)
    rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
    q = np.round(x * (FINGERPRINT_STEPS / rms)) if rms > 0 else np.zeros_like(x)
    head = json.dumps({"v": FEATURE_CHECK_VERSION, "shape": list(x.shape), "split_sha256": split_sha256,
                       "view": view}, sort_keys=True, default=str)
    h = hashlib.sha256(head.encode())
    h.update(np.ascontiguousarray(q.astype("<i4")).tobytes())
    return h.hexdigest()


def judge(stats: dict[str, Any], where: str, *, allow_collapsed: bool = False, rows: str = "images",
          across: str = "test images") -> None:
    """Raise :class:`FeatureError` (one line naming ``where``) for NaN / inf features, or for collapsed ones unless
    ``allow_collapsed``. ``rows`` / ``across`` name what a row of the features is in the two lines (segmentation:
    patches of val tiles)."""
    n, bad = stats["n"], stats["nonfinite_images"]
    if bad:
        raise FeatureError(f"{where}: {bad} of {n} {rows} have NaN or infinite features (a diverged or broken "
                           f"model, or inputs that overflow); nothing was recorded")
    if stats["collapsed"] and not allow_collapsed:
        raise FeatureError(
            f"{where}: the features have collapsed: {stats['flat_dims']} of {stats['dims']} dimensions vary by less "
            f"than {FLAT_DIM_REL_STD:g} of their magnitude across the {n} {across} (median std/rms "
            f"{stats['median_rel_std']:.2g}): an input scaled twice, weights that did not load or a collapsed "
            f"pretraining; nothing was recorded ({ALLOW_FLAG} records it, marked)")


def check_arrays(test: dict[str, np.ndarray], where: str, *, split_sha256: str, views: dict[str, Any],
                 others: Optional[dict[str, np.ndarray]] = None, allow_collapsed: bool = False) -> dict[str, Any]:
    """Check the test features of every view (``test``: ``{view key: [n, D]}``; ``others``: arrays of other splits,
    checked for NaN / inf only) and return the record's ``features`` section, fingerprints included. Raises
    :class:`FeatureError` as :func:`judge` does."""
    for key, arr in (others or {}).items():
        bad = int((~np.isfinite(arr).all(axis=1)).sum()) if len(arr) else 0
        if bad:
            raise FeatureError(f"{where}, {key}: {bad} of {len(arr)} images have NaN or infinite features (a diverged "
                               f"or broken model, or inputs that overflow); nothing was recorded")
    per_view: dict[str, Any] = {}
    for key, arr in test.items():
        stats = array_stats(arr)
        judge(stats, f"{where}, val features, view {key}", allow_collapsed=allow_collapsed)
        per_view[key] = {**stats, "fingerprint": fingerprint(arr, split_sha256=split_sha256, view=views.get(key))}
    return section(per_view, allow_collapsed)


def section(per_view: dict[str, Any], allow_collapsed: bool) -> dict[str, Any]:
    """The record's ``features`` section from the per-view stats (``collapsed``: any view collapsed)."""
    collapsed = any(v.get("collapsed") for v in per_view.values())
    if collapsed:
        log.warning("collapsed features at %s, recorded because of %s (the record and the leaderboard say so)",
                    ", ".join(k for k, v in per_view.items() if v.get("collapsed")), ALLOW_FLAG)
    status = f"collapsed (recorded with {ALLOW_FLAG})" if collapsed else (
        "ok" if any(v.get("collapsed") is not None for v in per_view.values()) else "not judged (fewer than 2 images)")
    return {"check": check_settings(), "status": status, "collapsed": collapsed,
            **({"allowed_by": ALLOW_FLAG} if collapsed and allow_collapsed else {}), "views": per_view}


def warning_line(features: Any) -> Optional[str]:
    """The loud line a run prints when its record carries collapsed features (None otherwise)."""
    if not isinstance(features, dict) or not features.get("collapsed"):
        return None
    views = [k for k, v in (features.get("views") or {}).items() if isinstance(v, dict) and v.get("collapsed")]
    return (f"WARNING: collapsed features recorded ({ALLOW_FLAG}) at {', '.join(views) or '?'}: the numbers of this "
            f"record describe a model whose features barely vary across images; the leaderboard marks it")
