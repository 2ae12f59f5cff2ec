"""Per-image prediction sidecars: ``<record stem>.preds.npz`` next to a result record, hashed in the record.

Format (CONTRACTS.md): a zip of ``.npy`` members, ``int64`` (little-endian, C order) except the confidences:

* ``y_true`` ``[n]``: labels in val split order;
* ``pred__<key>`` ``[n]``: the top-1 predicted label of evaluation ``<key>`` (``^[A-Za-z0-9_.=-]+$``); kNN keys are
  ``knn_s<scale>_k<k>`` (:func:`knn_key`), linear / cached-linear / fine-tune use ``top1``;
* ``confusion`` ``[n, C, C]``: per-image confusion counts of a segmentation run (rows = true, cols = predicted);
* ``conf__<key>`` ``[n]``, ``float64`` in [0, 1]: the top-label confidence of evaluation ``<key>`` (next to its
  ``pred__<key>``; ``<key>.ts`` for the temperature-scaled one), from which the record's calibration errors are
  recomputed (:mod:`satbench.stats.calibration`). A sidecar with confidences says format ``satbench.preds/2``.

The bytes are deterministic (members sorted, fixed zip timestamps), written atomically and exclusively, and the record
holds ``record["predictions"] = {"file", "sha256", "keys", "n", "num_classes", "format"}`` (``keys`` = the member
array names). Reading trusts nothing: the sidecar must be a regular file next to the record (no links, no FIFOs), its
size must fit ``n`` and ``num_classes``, its sha256 must match, the members must be exactly the recorded ones, each
``.npy`` header is checked (dtype ``<i8``, shape) *before* any array is loaded, and ``allow_pickle=False``.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from satbench.errors import ResultsError
from satbench.io.atomic import atomic_write_bytes, atomic_write_json
from satbench.io.bounded import UntrustedFileError, read_bytes_bounded, read_json_bounded
from satbench.io.hashing import sha256_bytes
from satbench.records.names import MAX_RECORD_BYTES, MAX_RECORD_DEPTH, SCHEMA, candidate_stems, record_destination

FORMAT = "satbench.preds/1"
FORMAT_CONF = "satbench.preds/2"  # a sidecar with conf__ members
SUFFIX = ".preds.npz"
KEY_RE = re.compile(r"^[A-Za-z0-9_.=-]+$")
NAME_RE = re.compile(r"^(y_true|confusion|(pred|conf)__[A-Za-z0-9_.=-]+)$")
FILE_RE = re.compile(r"^[A-Za-z0-9._-]+\.preds\.npz$")
#: Hard caps whatever a record declares (fMoW val is 53k images; 10^7 images or 4096 classes is far beyond any dataset).
MAX_N = 10_000_000
MAX_CLASSES = 4096
MAX_KEYS = 1024
_NPY_HEADER_MAX = 4096  # bytes of an .npy header we accept (numpy writes 128 for these arrays)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_DTYPE = np.dtype("<i8")
_CONF_DTYPE = np.dtype("<f8")


def knn_key(scale: float, k: int) -> str:
    """``knn_s<scale>_k<k>`` with the scale as Python prints the float (``0.125``, ``1.0``)."""
    return f"knn_s{float(scale)!r}_k{int(k)}"


def pred_name(key: str) -> str:
    """The member name of evaluation ``key`` (``pred__<key>``)."""
    if not isinstance(key, str) or not KEY_RE.match(key):
        raise ValueError(f"prediction key {key!r} must match {KEY_RE.pattern}")
    return f"pred__{key}"


def conf_name(key: str) -> str:
    """The member name of the top-label confidences of evaluation ``key`` (``conf__<key>``)."""
    return "conf__" + pred_name(key)[len("pred__"):]


def _is_conf(name: str) -> bool:
    return name.startswith("conf__")


def _dtype_of(name: str) -> np.dtype:
    return _CONF_DTYPE if _is_conf(name) else _DTYPE


# ---------------------------------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------------------------------
def _int64(name: str, a: Any) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "iub":
        raise ValueError(f"sidecar array {name!r} must hold integers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=_DTYPE)


def _float64(name: str, a: Any) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind != "f":
        raise ValueError(f"sidecar array {name!r} must hold floats, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=_CONF_DTYPE)
    if not np.isfinite(arr).all() or (arr < 0).any() or (arr > 1).any():
        raise ValueError(f"sidecar array {name!r} must hold confidences in [0, 1]")
    return arr


def validate_arrays(arrays: Mapping[str, Any], num_classes: int) -> tuple[dict[str, np.ndarray], int]:
    """Check names, dtypes, shapes and label ranges; returns (int64 / float64 confidence arrays, n)."""
    if not isinstance(num_classes, int) or not 0 < num_classes <= MAX_CLASSES:
        raise ValueError(f"num_classes must be in 1..{MAX_CLASSES}, got {num_classes!r}")
    out = {}
    for name, a in arrays.items():
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ValueError(f"sidecar array name {name!r} must be y_true, confusion, pred__<key> or conf__<key> "
                             f"(key matching {KEY_RE.pattern})")
        out[name] = _float64(name, a) if _is_conf(name) else _int64(name, a)
    if not out or len(out) > MAX_KEYS:
        raise ValueError(f"a sidecar holds 1..{MAX_KEYS} arrays, got {len(out)}")
    preds = [k for k in out if k.startswith("pred__")]
    if preds and "y_true" not in out:
        raise ValueError("a sidecar with predictions needs y_true")
    confs = [k for k in out if _is_conf(k)]
    for k in confs:
        if "pred__" + k[len("conf__"):].removesuffix(".ts") not in out:
            raise ValueError(f"sidecar array {k!r} has no predictions pred__{k[len('conf__'):].removesuffix('.ts')}")
    if "confusion" in out:
        cm = out["confusion"]
        if cm.ndim != 3 or cm.shape[1:] != (num_classes, num_classes):
            raise ValueError(f"confusion must be [n, {num_classes}, {num_classes}], got {cm.shape}")
        if (cm < 0).any():
            raise ValueError("confusion counts must be non-negative")
        n = cm.shape[0]
    else:
        n = out["y_true"].shape[0] if "y_true" in out else 0
    for name in ("y_true", *preds, *confs):
        if name not in out:
            continue
        a = out[name]
        if a.shape != (n,):
            raise ValueError(f"sidecar array {name!r} has shape {a.shape}, expected ({n},)")
        if n and not _is_conf(name) and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"sidecar array {name!r} has labels outside 0..{num_classes - 1}")
    if not 0 < n <= MAX_N:
        raise ValueError(f"a sidecar covers 1..{MAX_N} images, got {n}")
    return out, n


def encode(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The sidecar bytes: deflated zip of ``<name>.npy`` members in sorted order, fixed timestamps (deterministic)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w") as fh:
                np.lib.format.write_array(fh, np.ascontiguousarray(arrays[name], dtype=_dtype_of(name)),
                                          allow_pickle=False)
    return buf.getvalue()


def sidecar_name(record_path: str | os.PathLike) -> str:
    """``<record stem>.preds.npz`` for a record file ``<stem>.json``."""
    return f"{Path(record_path).stem}{SUFFIX}"


def write_sidecar(path: str | os.PathLike, arrays: Mapping[str, Any], num_classes: int) -> dict[str, Any]:
    """Write a sidecar atomically at ``path`` (never over an existing file); returns ``record["predictions"]``."""
    path = Path(path)
    if not FILE_RE.match(path.name):
        raise ValueError(f"sidecar file name {path.name!r} must match {FILE_RE.pattern}")
    checked, n = validate_arrays(arrays, num_classes)
    data = encode(checked)
    atomic_write_bytes(path, data, exclusive=True)
    return {"file": path.name, "sha256": sha256_bytes(data), "keys": sorted(checked), "n": n,
            "num_classes": num_classes, "format": FORMAT_CONF if any(map(_is_conf, checked)) else FORMAT}


def write_record_with_predictions(record: dict[str, Any], arrays: Mapping[str, Any], num_classes: int,
                                  results_dir: Optional[str | os.PathLike] = None) -> Path:
    """Write the sidecar, then the record (with ``record["predictions"]`` set) under the same stem; returns the record
    path. The record appears last, so no reader ever sees a record whose sidecar is missing; names are taken
    exclusively (a run never overwrites another's files)."""
    folder, base = record_destination(record, results_dir)
    for stem in candidate_stems(base):
        side = folder / f"{stem}{SUFFIX}"
        try:
            entry = write_sidecar(side, arrays, num_classes)
        except FileExistsError:
            continue
        record["predictions"] = entry
        try:
            return atomic_write_json(folder / f"{stem}.json", record, exclusive=True)
        except FileExistsError:
            side.unlink()
            record.pop("predictions", None)
            continue
    raise ResultsError(f"could not find a free record name in {folder}")


# ---------------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class Predictions:
    """A verified sidecar: ``y_true``, ``preds`` (key -> labels), ``confusion`` (or None), ``conf`` (key -> top-label
    confidences), where it came from."""

    path: Path
    sha256: str
    y_true: Optional[np.ndarray]
    preds: dict[str, np.ndarray] = field(default_factory=dict)
    confusion: Optional[np.ndarray] = None
    conf: dict[str, np.ndarray] = field(default_factory=dict)

    def correct(self, key: str) -> np.ndarray:
        """Per-image 0/1 correctness of evaluation ``key``."""
        if key not in self.preds:
            raise ResultsError(f"{self.path}: no predictions for {key!r} (has: {', '.join(sorted(self.preds))})")
        return (self.preds[key] == self.y_true).astype(np.float64)


def _entry(record: Mapping[str, Any], where: str) -> dict[str, Any]:
    e = record.get("predictions")
    if e is None:
        raise ResultsError(f"{where}: the record has no predictions sidecar (made before per-image predictions were "
                           f"kept, or by a runner that does not write them)")
    if not isinstance(e, dict):
        raise ResultsError(f"{where}: predictions must be a mapping, got {type(e).__name__}")
    f, h, keys = e.get("file"), e.get("sha256"), e.get("keys")
    if not isinstance(f, str) or not FILE_RE.match(f):
        raise ResultsError(f"{where}: predictions.file {f!r} must be a plain file name matching {FILE_RE.pattern}")
    if not isinstance(h, str) or not re.fullmatch(r"[0-9a-f]{64}", h):
        raise ResultsError(f"{where}: predictions.sha256 must be 64 hex digits, got {h!r}")
    if (not isinstance(keys, list) or not keys or len(keys) > MAX_KEYS or len(set(map(str, keys))) != len(keys)
            or not all(isinstance(k, str) and NAME_RE.match(k) for k in keys)):
        raise ResultsError(f"{where}: predictions.keys must be distinct names y_true / confusion / pred__<key> / "
                           f"conf__<key> (key matching {KEY_RE.pattern}), got {keys!r}")
    return e


def _int_field(v: Any) -> Optional[int]:
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else None


def expected_sizes(record: Mapping[str, Any], where: str) -> tuple[int, int]:
    """(n images, num classes) the sidecar must have, from the record; cross-checked with its other fields."""
    e = record.get("predictions") or {}
    n, c = _int_field(e.get("n")), _int_field(e.get("num_classes"))
    metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else {}
    dataset = record.get("dataset") if isinstance(record.get("dataset"), dict) else {}
    for name, other in (("metrics.n_val", _int_field(metrics.get("n_val"))),
                        ("metrics.n_test", _int_field(metrics.get("n_test"))),
                        ("dataset.n_val", _int_field(dataset.get("n_val")))):
        if other is not None:
            if n is None:
                n = other
            elif n != other:
                raise ResultsError(f"{where}: predictions.n = {n} but {name} = {other}")
    for name, other in (("metrics.num_classes", _int_field(metrics.get("num_classes"))),
                        ("dataset.num_classes", _int_field(dataset.get("num_classes")))):
        if other is not None:
            if c is None:
                c = other
            elif c != other:
                raise ResultsError(f"{where}: predictions.num_classes = {c} but {name} = {other}")
    if n is None or not 0 < n <= MAX_N:
        raise ResultsError(f"{where}: the record does not give a plausible image count for its sidecar (got {n!r}, "
                           f"expected 1..{MAX_N})")
    if c is None or not 0 < c <= MAX_CLASSES:
        raise ResultsError(f"{where}: the record does not give a plausible class count (got {c!r}, expected "
                           f"1..{MAX_CLASSES})")
    return n, c


def _member_shape(name: str, n: int, c: int) -> tuple[int, ...]:
    return (n, c, c) if name == "confusion" else (n,)


def _read_regular(path: Path, limit: int) -> bytes:
    """The bytes of a regular file (not a link, FIFO or device; never blocks), at most ``limit`` bytes (the one
    bounded reader, :func:`satbench.io.bounded.read_bytes_bounded`, with the sidecar's wording)."""
    try:
        return read_bytes_bounded(path, limit, follow_symlinks=False)
    except FileNotFoundError:
        raise ResultsError(f"predictions sidecar {path} is missing") from None
    except UntrustedFileError as exc:  # the limit follows from the record's image and class counts
        raise ResultsError(f"predictions sidecar {path} {exc}") from None
    except OSError as exc:
        raise ResultsError(f"predictions sidecar {path} cannot be opened ({exc.strerror or exc})") from None


def read_sidecar(path: str | os.PathLike, entry: Mapping[str, Any], n: int, num_classes: int) -> Predictions:
    """Read and verify a sidecar against its record entry and the expected sizes (see the module docstring)."""
    path = Path(path)
    names = list(entry["keys"])
    member_bytes = {k: int(np.prod(_member_shape(k, n, num_classes))) * 8 + _NPY_HEADER_MAX for k in names}
    limit = sum(member_bytes.values()) * 11 // 10 + 4096 * (len(names) + 1)
    data = _read_regular(path, limit)
    if sha256_bytes(data) != entry["sha256"]:
        raise ResultsError(f"predictions sidecar {path}: sha256 does not match the record (the file was changed or "
                           f"belongs to another run)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ResultsError(f"predictions sidecar {path} is not a valid npz archive ({exc})") from None
    found = [i.filename for i in infos]
    wanted = sorted(f"{k}.npy" for k in names)
    if sorted(found) != wanted:
        raise ResultsError(f"predictions sidecar {path}: members {sorted(found)} differ from the record's keys {wanted}")
    try:
        for info in infos:
            name = info.filename[:-4]
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ResultsError(f"predictions sidecar {path}: member {info.filename} uses an unsupported compression")
            if info.file_size > member_bytes[name]:
                raise ResultsError(f"predictions sidecar {path}: member {info.filename} unpacks to {info.file_size} "
                                   f"bytes, more than its expected {member_bytes[name]}")
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh, max_header_size=_NPY_HEADER_MAX)
                elif version == (2, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh, max_header_size=_NPY_HEADER_MAX)
                else:
                    raise ResultsError(f"predictions sidecar {path}: member {info.filename} has .npy version {version}")
                expected = _member_shape(name, n, num_classes)
                want = _dtype_of(name)
                if dtype != want or fortran or tuple(shape) != expected:
                    raise ResultsError(f"predictions sidecar {path}: {name} is {dtype}{list(shape)}"
                                       f"{' (Fortran order)' if fortran else ''}, expected {want.name}{list(expected)}")
        # every header is checked: now load (bounded members, no pickles)
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {i.filename[:-4]: np.asarray(npz[i.filename[:-4]]) for i in infos}
    except ResultsError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ResultsError(f"predictions sidecar {path} is damaged ({exc})") from None
    for name, a in arrays.items():
        if name == "confusion":
            if (a < 0).any():
                raise ResultsError(f"predictions sidecar {path}: negative confusion counts")
        elif _is_conf(name):
            if not np.isfinite(a).all() or (a < 0).any() or (a > 1).any():
                raise ResultsError(f"predictions sidecar {path}: {name} holds values outside [0, 1]")
        elif a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ResultsError(f"predictions sidecar {path}: {name} has labels outside 0..{num_classes - 1}")
    preds = {k[len("pred__"):]: v for k, v in arrays.items() if k.startswith("pred__")}
    if preds and "y_true" not in arrays:
        raise ResultsError(f"predictions sidecar {path}: predictions without y_true")
    conf = {k[len("conf__"):]: v for k, v in arrays.items() if _is_conf(k)}
    return Predictions(path, entry["sha256"], arrays.get("y_true"), preds, arrays.get("confusion"), conf)


def load_record(path: str | os.PathLike) -> dict[str, Any]:
    """A satbench record read from ``path`` (with ``_path`` set) with the bounds of every record read (regular file,
    at most :data:`~satbench.records.names.MAX_RECORD_BYTES`, bounded nesting); one-line errors for anything else."""
    path = Path(path)
    if not os.path.lexists(path):
        raise ResultsError(f"record {path} does not exist")
    rec = read_json_bounded(path, what="record", limit=MAX_RECORD_BYTES, error=ResultsError, max_depth=MAX_RECORD_DEPTH)
    if not isinstance(rec, dict) or rec.get("schema") != SCHEMA:
        raise ResultsError(f"{path}: not a satbench record (schema {SCHEMA!r} expected)")
    rec["_path"] = str(path)
    return rec


def predictions_for_record(record: str | os.PathLike | Mapping[str, Any]) -> Predictions:
    """The verified sidecar of a record given as a path or as a dict read by :func:`satbench.records.results.read_records`
    (which sets ``_path``): the sidecar lies in the record's folder under ``record["predictions"]["file"]``."""
    rec = load_record(record) if isinstance(record, (str, os.PathLike)) else record
    if not isinstance(rec, Mapping) or not rec.get("_path"):
        raise ResultsError("predictions_for_record needs a record path or a record read from disk (with _path)")
    where = str(rec["_path"])
    entry = _entry(rec, where)
    n, c = expected_sizes(rec, where)
    return read_sidecar(Path(rec["_path"]).parent / entry["file"], entry, n, c)
