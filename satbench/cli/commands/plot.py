"""``satbench plot RECORD``: per-class accuracy (segmentation: IoU) bar chart and confusion matrix of one record, from
its prediction sidecar (``<record stem>.preds.npz``, see CONTRACTS: ``y_true`` + ``pred__<key>``, or ``confusion``); a
record with ``metrics["corruptions"]`` (``run --corruptions``) also gets top-1 against severity per corruption type,
``<record>.corruptions.png``."""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path
from typing import Any, Optional


_SIDECAR = re.compile(r"^[A-Za-z0-9_.=-]+\.preds\.npz$")
_KEY = re.compile(r"^[A-Za-z0-9_.=-]+$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="per-class accuracy and confusion matrix of one record (from its predictions)",
                       description="Plot one record: a per-class accuracy bar chart (segmentation: per-class IoU) and a "
                                   "row-normalised confusion matrix, from the record's prediction sidecar; for a record "
                                   "with corruptions (run --corruptions) also top-1 against severity per type.")
    p.add_argument("record", help="record file, id, id prefix or file name (as `satbench results show`)")
    p.add_argument("--results-dir", default=None, help="records folder (default $SATBENCH_RESULTS or ./results/runs)")
    p.add_argument("--key", default=None,
                   help="which evaluation of the sidecar (pred__<key>), e.g. knn_s0.125_k20 (default: the headline one)")
    p.add_argument("--out", default=".", help="folder for <record>.per_class.png, <record>.confusion.png and, for a record with --corruptions, "
                        "<record>.corruptions.png (default .)")
    p.set_defaults(func=_plot)


def load_predictions(rec: dict[str, Any]) -> dict[str, Any]:
    """The record's sidecar arrays, checked: a plain file name next to the record, its sha256 as recorded, a readable
    ``.npz`` without pickles. Each failure is one :class:`ResultsError` naming the record / file."""
    import numpy as np

    from satbench.errors import ResultsError
    from satbench.io.hashing import sha256_file

    where = rec.get("_path", "record")
    pred = rec.get("predictions")
    if not isinstance(pred, dict) or not pred.get("file"):
        raise ResultsError(f"{where}: the record has no predictions sidecar (record['predictions']); per-class plots "
                           f"need a run that wrote <record>.preds.npz")
    name = pred["file"]
    if not isinstance(name, str) or not _SIDECAR.match(name):
        raise ResultsError(f"{where}: predictions.file {str(name)[:80]!r} must be a plain file name ending in .preds.npz "
                           f"next to the record")
    path = Path(where).parent / name
    if not path.is_file():
        raise ResultsError(f"{where}: predictions sidecar {path} is missing")
    want = pred.get("sha256")
    got = sha256_file(path)
    if not isinstance(want, str) or got != want:
        raise ResultsError(f"{path}: sha256 {got[:12]}... does not match the record's predictions.sha256 "
                           f"{str(want)[:12]}... (the sidecar was changed or belongs to another record)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in z.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ResultsError(f"{path}: not a readable .npz without pickles ({type(exc).__name__})") from None
    for k, a in arrays.items():
        confidences = k.startswith("conf__") and a.dtype.kind == "f"  # top-label confidences (calibration)
        if not _KEY.match(k) or (a.dtype.kind not in "iu" and not confidences):
            raise ResultsError(f"{path}: array {k[:60]!r} ({a.dtype}) is not an integer array with a plain name")
    return arrays


def class_names(rec: dict[str, Any], n: int) -> list[str]:
    """The record's class names when it lists ``n`` of them (dataset.classes, metrics.classes, segmentation's
    per-class metric keys), else ``0..n-1``."""
    for cand in ((rec.get("dataset") or {}).get("classes"), (rec.get("metrics") or {}).get("classes"),
                 list((((rec.get("metrics") or {}).get("per_class") or {}).get("IoU") or {}))):
        if isinstance(cand, list) and len(cand) == n and all(isinstance(c, str) for c in cand):
            return cand
    return [str(i) for i in range(n)]


def _choose_key(rec: dict[str, Any], keys: list[str], wanted: Optional[str], path: str) -> str:
    from satbench.errors import ResultsError
    from satbench.leaderboard import runs as R

    if wanted is not None:
        if wanted not in keys:
            raise ResultsError(f"{path}: no predictions for --key {wanted!r}; the sidecar has {', '.join(keys) or 'none'}")
        return wanted
    if "top1" in keys:
        return "top1"
    k = R.reported_k(rec)
    knn = [key for key in keys if re.fullmatch(rf"knn_s([0-9.]+)_k{k}", key)]
    if knn:  # the reported k at the largest scale
        return max(knn, key=lambda key: float(re.fullmatch(r"knn_s([0-9.]+)_k\d+", key).group(1)))
    return keys[0]


def _plot(args: argparse.Namespace) -> int:
    import numpy as np

    from satbench.errors import ResultsError
    from satbench.io.atomic import atomic_write_bytes
    from satbench.leaderboard import runs as R
    from satbench.leaderboard.escape import plain
    from satbench.leaderboard.plots import confusion_png, per_class_png
    from satbench.cli.commands.results import _folder, find_record

    rec = find_record(args.record, _folder(args))
    where = rec["_path"]
    arrays = load_predictions(rec)
    stem = Path(where).stem
    what = f"{R.text(rec, 'model')} · {R.weights_label(rec)} · {R.text(rec, 'dataset', 'name')}"
    if "confusion" in arrays:  # segmentation: per-image confusion counts
        conf = arrays["confusion"]
        if conf.ndim != 3 or conf.shape[1] != conf.shape[2] or (conf < 0).any():
            raise ResultsError(f"{where}: confusion must be non-negative counts [n_images, C, C], got shape {conf.shape}")
        matrix = conf.sum(axis=0).astype(np.int64)
        names = class_names(rec, matrix.shape[0])
        tp = np.diag(matrix).astype(float)
        denom = matrix.sum(0) + matrix.sum(1) - tp
        iou = np.divide(tp, denom, out=np.full_like(tp, np.nan), where=denom > 0) * 100
        keep = ~np.isnan(iou)
        bars = per_class_png([n for n, k in zip(names, keep) if k], iou[keep], f"{what}\nper-class IoU (%)", "IoU (%)")
        title = f"{what}\nconfusion (pixels, row-normalised)"
    else:
        keys = sorted(k[len("pred__"):] for k in arrays if k.startswith("pred__"))
        key = _choose_key(rec, keys, args.key, where)
        if "y_true" not in arrays:
            raise ResultsError(f"{where}: the sidecar has no y_true")
        y, p = arrays["y_true"].astype(np.int64), arrays[f"pred__{key}"].astype(np.int64)
        if y.ndim != 1 or p.shape != y.shape or (y < 0).any() or (p < 0).any():
            raise ResultsError(f"{where}: y_true and pred__{key} must be non-negative labels of one length, got "
                               f"{y.shape} and {p.shape}")
        declared = R.number(rec, "dataset", "num_classes") or R.number(rec, "metrics", "num_classes")
        n = int(declared) if declared else int(max(y.max(initial=0), p.max(initial=0)) + 1)
        if y.size and max(y.max(), p.max()) >= n:
            raise ResultsError(f"{where}: a label in the sidecar is >= the record's num_classes {n}")
        matrix = np.bincount(y * n + p, minlength=n * n).reshape(n, n)
        names = class_names(rec, n)
        rows = matrix.sum(1)
        acc = np.divide(np.diag(matrix), rows, out=np.full(n, np.nan), where=rows > 0) * 100
        keep = ~np.isnan(acc)
        top1 = 100.0 * np.trace(matrix) / max(1, y.size)
        bars = per_class_png([nm for nm, k in zip(names, keep) if k], acc[keep],
                             f"{what} · {key}\nper-class accuracy (top-1 {top1:.2f}%)", "accuracy (%)")
        title = f"{what} · {key}\nconfusion matrix (rows: true class)"
    block = (rec.get("metrics") or {}).get("corruptions") if isinstance(rec.get("metrics"), dict) else None
    robust = None
    if block is not None:  # checked before anything is written: a malformed block is one line and no file
        from satbench.leaderboard.corruption_plot import corruptions_png

        robust = corruptions_png(block, where, f"{what}\ntop-1 vs corruption severity")
    out = Path(args.out)
    written = [atomic_write_bytes(out / f"{stem}.per_class.png", bars),
               atomic_write_bytes(out / f"{stem}.confusion.png", confusion_png(matrix, names, title))]
    if robust is not None:
        written.append(atomic_write_bytes(out / f"{stem}.corruptions.png", robust))
    for w in written:
        print(plain(f"wrote {w}"), file=sys.stderr)
    return 0
