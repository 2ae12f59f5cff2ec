"""fMoW-RGB as SatDINO reads it (spec 2.4 and 4.3): the CSV writer and the two datasets.

* :func:`struct_to_rows` / :func:`write_fmow_csv`: ``satdino.fmow_prepare.data_to_csv`` from the fMoW
  baseline's ``training_struct.json`` (a list of ``{"features_path", "img_path", "category"}``). Columns
  ``id, image_path, feature_path, split, category_name, category_idx, gsd, hour, month, year``; ``split`` =
  path component -5, ``category_name`` = component -4, ``id`` = ``category/category_N``; paths = the last 7
  components; ``gsd = f[0]``, ``year = int(f[4])``, ``month = int(f[5] * 12)``, ``hour = int(f[7])`` from
  the 45-value ``*_features.json``; ``category_idx`` = index in :data:`FMOW_CATEGORIES`.
* :class:`FMoWDataset` (``FMoWRGBDataset``, "basic"): ``(image, category_idx)``.
* :class:`FMoWTemporalDataset` (``FMoWRGBTemporalDataset``): 3 images + metadata lists of 3. With
  ``temporal=False`` (the released setting) it is the same image three times; with ``temporal=True`` it is
  two random other acquisitions of the same ``id`` (drawn with replacement) then the indexed image.

Images are read as 8-bit RGB (the official code skips ``.convert('RGB')``; fMoW crops are RGB JPEGs).
A bad row (missing column, unknown category, missing image) is reported with its CSV line number.
"""

from __future__ import annotations

import csv
import io
import os
import random
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Optional, Sequence

from satbench.errors import DataError
from satbench.io.atomic import atomic_write_bytes
from satbench.io.bounded import read_json_bounded
from satbench.data.catalog import get_dataset_spec
from satbench.data.images import read_rgb

#: The 63-class fMoW-baseline label order (``params.py``); false_detection = 0, impoverished_settlement = 43. The list
#: itself is data: ``classes`` of the catalog's fmow spec (``satbench/data/catalog/fmow.yaml``).
FMOW_CATEGORIES: tuple[str, ...] = get_dataset_spec("fmow").classes
CSV_COLUMNS = ("id", "image_path", "feature_path", "split", "category_name", "category_idx", "gsd", "hour",
               "month", "year")
SPLITS = ("train", "val")
#: Size caps of the fMoW-baseline JSON files read here (files satbench did not write): the full training_struct.json
#: is about 100 MB; a *_features.json holds 45 numbers.
MAX_STRUCT_BYTES = 1 << 30
MAX_FEATURES_BYTES = 1 << 20


def _last(path: str, n: int = 7) -> str:
    parts = [p for p in PurePosixPath(path.replace("\\", "/")).parts if p != "/"]
    return "/".join(parts[-n:])


def _features(entry_path: str, data_root: Optional[Path], where: str) -> list[float]:
    candidates = [Path(entry_path)]
    if data_root is not None:
        candidates.insert(0, data_root / _last(entry_path))
    for c in candidates:
        if c.is_file():
            feats = read_json_bounded(c, what=f"{where}: features file", limit=MAX_FEATURES_BYTES, error=DataError)
            if not isinstance(feats, list) or len(feats) < 8 or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) for x in feats):
                raise DataError(f"{where}: features file {c} must hold a list of >= 8 numbers (fMoW baseline: 45)")
            return [float(x) for x in feats]
    raise DataError(f"{where}: features file {entry_path} not found"
                    + (f" (also looked under --data-root {data_root})" if data_root else "; pass --data-root"))


def struct_to_rows(struct_path: str | os.PathLike, split: str, data_root: Optional[str | os.PathLike] = None
                   ) -> list[dict[str, Any]]:
    """The CSV rows of ``split`` from a fMoW-baseline ``training_struct.json``."""
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, got {split!r}")
    struct_path = Path(struct_path)
    entries = read_json_bounded(struct_path, what="struct file", limit=MAX_STRUCT_BYTES, error=DataError)
    if not isinstance(entries, list):
        raise DataError(f"struct file {struct_path} must hold a JSON list of entries (fMoW baseline training_struct.json)")
    root = Path(data_root) if data_root is not None else None
    rows = []
    for n, e in enumerate(entries):
        where = f"{struct_path} entry {n}"
        if not isinstance(e, dict) or "img_path" not in e or "features_path" not in e:
            raise DataError(f"{where}: expected an object with img_path and features_path")
        parts = PurePosixPath(str(e["img_path"]).replace("\\", "/")).parts
        if len(parts) < 7:
            raise DataError(f"{where}: img_path {e['img_path']!r} has fewer than 7 path components")
        if parts[-5] != split:
            continue
        name = parts[-4]
        if name not in FMOW_CATEGORIES:
            raise DataError(f"{where}: unknown fMoW category {name!r} (path component -4 of {e['img_path']})")
        idx = FMOW_CATEGORIES.index(name)
        if "category" in e and int(e["category"]) != idx:
            raise DataError(f"{where}: category {e['category']} disagrees with {name!r} = {idx} in the 63-class order")
        f = _features(str(e["features_path"]), root, where)
        rows.append({"id": f"{parts[-4]}/{parts[-3]}", "image_path": _last(str(e["img_path"])),
                     "feature_path": _last(str(e["features_path"])), "split": parts[-5], "category_name": name,
                     "category_idx": idx, "gsd": f[0], "hour": int(f[7]), "month": int(f[5] * 12),
                     "year": int(f[4])})
    return rows


def write_fmow_csv(struct_path: str | os.PathLike, split: str, out_csv: str | os.PathLike,
                   data_root: Optional[str | os.PathLike] = None) -> int:
    """Write the CSV of ``split`` atomically; returns the number of rows."""
    rows = struct_to_rows(struct_path, split, data_root)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_bytes(out_csv, buf.getvalue().encode())
    return len(rows)


def read_fmow_csv(csv_path: str | os.PathLike, data_root: str | os.PathLike,
                  required: Sequence[str] = ("image_path", "category_idx"), check_files: bool = True
                  ) -> list[dict[str, Any]]:
    """Rows of a fMoW CSV, validated; ``path`` = ``data_root / image_path.strip('/')``; ``line`` = CSV line."""
    import pandas as pd

    csv_path = Path(csv_path)
    try:
        df = pd.read_csv(csv_path, dtype={"id": str, "image_path": str})
    except FileNotFoundError:
        raise DataError(f"CSV {csv_path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"CSV {csv_path} is not readable ({str(exc).splitlines()[0][:120]})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DataError(f"CSV {csv_path} lacks column(s) {', '.join(missing)} (has: {', '.join(df.columns)})")
    root = Path(data_root)
    rows = []
    for i, rec in enumerate(df.to_dict("records")):
        line = i + 2  # 1-based, after the header
        where = f"{csv_path}:{line}"
        for c in required:
            if rec[c] != rec[c]:  # NaN
                raise DataError(f"{where}: empty {c}")
        if "category_idx" in required:
            try:
                idx = int(rec["category_idx"])
            except (TypeError, ValueError):
                raise DataError(f"{where}: category_idx {rec['category_idx']!r} is not an integer") from None
            if not 0 <= idx < len(FMOW_CATEGORIES):
                raise DataError(f"{where}: unknown category_idx {idx} (expected 0..{len(FMOW_CATEGORIES) - 1})")
            name = rec.get("category_name")
            if isinstance(name, str) and name != FMOW_CATEGORIES[idx]:
                raise DataError(f"{where}: category_name {name!r} is not category {idx} ({FMOW_CATEGORIES[idx]!r})")
            rec["category_idx"] = idx
        if "gsd" in required:
            try:
                rec["gsd"] = float(rec["gsd"])
            except (TypeError, ValueError):
                raise DataError(f"{where}: gsd {rec['gsd']!r} is not a number") from None
            if not rec["gsd"] > 0:
                raise DataError(f"{where}: gsd {rec['gsd']} must be > 0 (metres per pixel)")
        path = root / str(rec["image_path"]).strip("/")
        if check_files and not path.is_file():
            raise DataError(f"{where}: image {path} does not exist")
        rec["path"] = path
        rec["line"] = line
        rows.append(rec)
    if not rows:
        raise DataError(f"CSV {csv_path} has no rows")
    return rows


class FMoWDataset:
    """``(image, category_idx)`` from a fMoW CSV ("basic", used by linear probing)."""

    def __init__(self, csv_path: str | os.PathLike, data_root: str | os.PathLike,
                 transform: Optional[Callable[[Any], Any]] = None) -> None:
        self.rows = read_fmow_csv(csv_path, data_root)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        r = self.rows[i]
        img = read_rgb(r["path"])
        return (self.transform(img) if self.transform else img), r["category_idx"]


class FMoWTemporalDataset:
    """3 images + metadata (``gsd``, ``year``, ``month``, ``hour``: lists of 3) from a fMoW CSV.

    ``__getitem__`` returns ``(images, label, meta)``; with a ``transform`` (called as
    ``transform(images, meta)``), ``(crops, label, meta_out)``.
    """

    META = ("gsd", "year", "month", "hour")

    def __init__(self, csv_path: str | os.PathLike, data_root: str | os.PathLike, temporal: bool = False,
                 transform: Optional[Callable[..., Any]] = None) -> None:
        self.rows = read_fmow_csv(csv_path, data_root, required=("image_path", "category_idx", "gsd"))
        self.temporal = temporal
        self.transform = transform
        self.by_id: dict[str, list[int]] = {}
        if temporal:
            if "id" not in self.rows[0]:
                raise DataError(f"CSV {csv_path}: temporal mode needs the 'id' column")
            for i, r in enumerate(self.rows):
                self.by_id.setdefault(str(r["id"]), []).append(i)

    def __len__(self) -> int:
        return len(self.rows)

    def _meta(self, r: dict[str, Any]) -> dict[str, float]:
        return {k: (float(r[k]) if k in r and r[k] == r[k] else 0.0) for k in self.META}

    def __getitem__(self, i: int) -> tuple[Any, int, dict[str, list[float]]]:
        r = self.rows[i]
        if self.temporal:
            others = [j for j in self.by_id[str(r["id"])] if j != i] or [i]
            picks = [random.choice(others), random.choice(others), i]
        else:
            picks = [i, i, i]
        if len(set(picks)) == 1:
            img = read_rgb(r["path"])
            images = [img, img, img]
        else:
            images = [read_rgb(self.rows[j]["path"]) for j in picks]
        metas = [self._meta(self.rows[j]) for j in picks]
        meta = {k: [m[k] for m in metas] for k in self.META}
        if self.transform is not None:
            crops, meta_out = self.transform(images, meta)
            return crops, r["category_idx"], meta_out
        return images, r["category_idx"], meta


@dataclass(frozen=True)
class FmowSample:
    """One labelled fMoW image: path, category index, line of its CSV."""

    path: Path
    label: int
    line: int


class FmowCsvDataset:
    """fMoW-RGB for the classification tasks: train / val CSVs (``satbench data fmow-csv``) and the image root.

    The same interface as :class:`satbench.data.scene.SceneDataset`: ``samples(split)``, ``classes``,
    ``split_sha256(split)`` (the CSV file's sha256), ``normalization`` (SatDINO's fmow statistics), ``describe()``.
    """

    def __init__(self, csvs: dict[str, str | os.PathLike], data_root: str | os.PathLike) -> None:
        from satbench.io.hashing import sha256_file

        if not data_root:
            raise DataError("fmow needs --data-root (the folder the CSVs' image_path entries are relative to)")
        self.spec = get_dataset_spec("fmow")
        self.name = "fmow"
        self.root = Path(data_root)
        self.csvs = {k: Path(v) for k, v in csvs.items() if v}
        for split, path in self.csvs.items():
            if not path.is_file():
                raise DataError(f"fmow {split} CSV {path} does not exist")
        self._hashes = {k: sha256_file(v) for k, v in self.csvs.items()}
        self.normalization = self.spec.norm
        self.native_size = self.spec.native_size
        self.protocol_name = "fmow"
        self.is_subset = False
        self._samples: dict[str, list[FmowSample]] = {}

    @property
    def classes(self) -> list[str]:
        return list(FMOW_CATEGORIES)

    @property
    def num_classes(self) -> int:
        return len(FMOW_CATEGORIES)

    def split_sha256(self, split: str) -> str:
        self._need(split)
        return self._hashes[split]

    def _need(self, split: str) -> None:
        if split not in self.csvs:
            raise DataError(f"fmow: no {split} CSV given (--{split}-csv)")

    def samples(self, split: str) -> list[FmowSample]:
        self._need(split)
        if split not in self._samples:
            self._samples[split] = [FmowSample(Path(r["path"]), int(r["category_idx"]), int(r["line"]))
                                    for r in read_fmow_csv(self.csvs[split], self.root)]
        return self._samples[split]

    def describe(self) -> dict[str, Any]:
        return {"name": "fmow", "kind": "fmow", "protocol_dataset": "fmow", "num_classes": self.num_classes, "classes": list(self.classes),
                "data_root": str(self.root), "split_files": {k: str(v) for k, v in self.csvs.items()},
                "split_hashes": dict(self._hashes), "is_subset": False, "in_catalog": True,
                **{f"n_{k}": len(self.samples(k)) for k in self.csvs}}
