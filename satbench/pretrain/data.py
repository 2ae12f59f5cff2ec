"""Image sources for pretraining: fMoW CSVs, or the user's own imagery with a constant or per-image GSD.

Every source yields ``(images, label, meta)``: 3 PIL images (the same image 3 times outside temporal
fMoW), a label (0 when there is none) and ``meta = {"gsd": [g, g, g], ...}``; with a transform attached
(``transform(images, meta)``) it yields the multi-crop views instead.

``open_pretrain_source(spec, gsd=None, data_root=None, temporal=False)`` accepts:

* a bundled dataset name (``ucm-mini``) or a scene-dataset folder with ``images/`` and ``train.txt``: the
  train split (needs ``gsd``);
* a folder of images (searched recursively; needs ``gsd``);
* a split/list file (``.txt``: one image path per line, relative to the file's folder or its ``images/``);
* a CSV: a fMoW CSV (``image_path, category_idx, gsd, ...``; read with :class:`FMoWTemporalDataset`) or a
  plain ``image_path,gsd`` CSV (per-image GSD; ``gsd`` column may be omitted when ``gsd`` is given).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable, Optional

from satbench.data.fmow import FMoWTemporalDataset, read_fmow_csv
from satbench.data.images import IMAGE_EXTENSIONS, read_rgb
from satbench.errors import DataError
from satbench.io.bounded import UntrustedFileError, open_regular



class ImageListSource:
    """Images with a GSD each (metres/pixel); ``description`` is recorded in checkpoints."""

    def __init__(self, paths: list[Path], gsds: list[float], description: dict[str, Any],
                 transform: Optional[Callable[..., Any]] = None) -> None:
        if not paths:
            raise DataError(f"no images found in {description.get('spec')}")
        self.paths = paths
        self.gsds = gsds
        self.description = description
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[Any, int, dict[str, list[float]]]:
        img = read_rgb(self.paths[i])
        images = [img, img, img]
        meta = {"gsd": [self.gsds[i]] * 3}
        if self.transform is not None:
            crops, meta_out = self.transform(images, meta)
            return crops, 0, meta_out
        return images, 0, meta


def _need_gsd(gsd: Optional[float], spec: str) -> float:
    if gsd is None:
        raise DataError(f"{spec}: this source has no per-image GSD; pass --gsd METRES_PER_PIXEL (e.g. 0.3 for UC Merced)")
    if not gsd > 0:
        raise DataError(f"--gsd must be > 0 metres per pixel, got {gsd}")
    return float(gsd)


def _from_csv(path: Path, gsd: Optional[float], data_root: Optional[Path], temporal: bool) -> Any:
    try:
        with open_regular(path, "r", newline="") as fh:
            header = next(csv.reader(fh), [])
    except UntrustedFileError as exc:
        raise DataError(f"CSV {exc}") from None
    except OSError as exc:
        raise DataError(f"CSV {path} cannot be read: {exc.strerror}") from None
    root = data_root or path.parent
    if "category_idx" in header:
        ds = FMoWTemporalDataset(path, root, temporal=temporal)
        ds.description = {"kind": "fmow-csv", "spec": str(path), "data_root": str(root), "temporal": temporal,
                          "n": len(ds)}
        return ds
    if "image_path" not in header:
        raise DataError(f"CSV {path}: expected an image_path column (and gsd, or pass --gsd); has {header}")
    if temporal:
        raise DataError(f"CSV {path}: temporal_dataset needs a fMoW CSV (id and category_idx columns)")
    has_gsd = "gsd" in header
    rows = read_fmow_csv(path, root, required=("image_path", "gsd") if has_gsd else ("image_path",))
    gsds = [float(r["gsd"]) for r in rows] if has_gsd else [_need_gsd(gsd, str(path))] * len(rows)
    if has_gsd and gsd is not None:
        raise DataError(f"CSV {path} has a gsd column; do not also pass --gsd")
    return ImageListSource([r["path"] for r in rows], gsds,
                           {"kind": "csv", "spec": str(path), "data_root": str(root), "n": len(rows),
                            "gsd": "per-image"})


def _from_list(path: Path, gsd: float) -> ImageListSource:
    base = path.parent / "images" if (path.parent / "images").is_dir() else path.parent
    paths = []
    try:
        with open_regular(path, "r") as fh:
            text = fh.read()
    except UntrustedFileError as exc:
        raise DataError(f"image list {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"image list {path} cannot be read: {getattr(exc, 'strerror', None) or exc}") from None
    for n, line in enumerate(text.splitlines(), 1):
        entry = line.strip()
        if not entry:
            continue
        p = Path(entry) if Path(entry).is_absolute() else base / entry
        if not p.is_file():
            raise DataError(f"{path}:{n}: image {p} does not exist")
        paths.append(p)
    return ImageListSource(paths, [gsd] * len(paths), {"kind": "list", "spec": str(path), "n": len(paths), "gsd": gsd})


def open_pretrain_source(spec: str, *, gsd: Optional[float] = None, data_root: Optional[str] = None,
                         temporal: bool = False) -> Any:
    """Open ``spec`` (dataset name, folder, split file or CSV) as a pretraining image source."""
    from satbench.data.catalog import find_dataset_spec
    from satbench.data.scene import open_scene_dataset

    root = Path(data_root) if data_root else None
    path = Path(spec).expanduser()
    bundled = find_dataset_spec(spec)
    if gsd is None and bundled is not None and bundled.bundled:
        gsd = bundled.gsd
    if (bundled is not None and bundled.bundled) or (path.is_dir() and (path / "images").is_dir() and (path / "train.txt").is_file()):
        g = _need_gsd(gsd, spec)
        ds = open_scene_dataset(spec)
        samples = ds.samples("train")
        return ImageListSource([s.path for s in samples], [g] * len(samples),
                               {"kind": "scene-train-split", "spec": spec, "name": ds.name,
                                "split_sha256": ds.splits["train"].sha256, "n": len(samples), "gsd": g})
    if not path.exists():
        raise DataError(f"--data {spec}: no such file, folder or bundled dataset")
    if path.is_file() and path.suffix.lower() == ".csv":
        return _from_csv(path, gsd, root, temporal)
    if temporal:
        raise DataError(f"--data {spec}: temporal_dataset needs a fMoW CSV")
    if path.is_file() and path.suffix.lower() == ".txt":
        return _from_list(path, _need_gsd(gsd, spec))
    if path.is_dir():
        g = _need_gsd(gsd, spec)
        paths = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        return ImageListSource(paths, [g] * len(paths), {"kind": "folder", "spec": str(path), "n": len(paths), "gsd": g})
    raise DataError(f"--data {spec}: expected a folder, a .txt list, a .csv or a bundled dataset name")
