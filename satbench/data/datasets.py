"""Open any dataset by name or folder: the one entry point tasks and the Python API use.

``open_dataset`` looks the name up in the catalog (``satbench/data/catalog``) and returns the dataset object of its
kind: :class:`~satbench.data.scene.SceneDataset` (scene folders, bundled subsets, a user's own folder),
:class:`~satbench.data.fmow.FmowCsvDataset` (fMoW-RGB from its CSVs) or
:class:`~satbench.data.segmentation.SegDataset` (mmseg-layout tiles).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from satbench.errors import DataError
from satbench.data.normalization import Normalization
from satbench.data.catalog import find_dataset_spec

KIND_NAMES = {"scene": "scene-classification", "fmow": "fMoW", "segmentation": "segmentation"}


def _kind_of(spec: str, seg_format: Optional[str]) -> str:
    cat = find_dataset_spec(spec)
    if cat is not None and not (Path(spec).expanduser().is_dir() and cat.kind == "scene" and not cat.bundled):
        return cat.kind
    p = Path(spec).expanduser()
    if seg_format or (p.is_dir() and (p / "img_dir").is_dir()):
        return "segmentation"
    return "scene"


def dataset_kind_of(spec: str, seg_format: Optional[str] = None) -> str:
    """The kind :func:`open_dataset` gives ``spec`` (a catalog name or a folder): ``scene``, ``fmow`` or
    ``segmentation`` (a folder with ``img_dir/``)."""
    return _kind_of(spec, seg_format)


def open_dataset(spec: Optional[str] = None, *, kinds: Sequence[str] = ("scene", "fmow", "segmentation"),
                 data_root: Optional[str | Path] = None, normalization: Optional[Normalization] = None,
                 native_size: Optional[int] = None, split_source: str = "auto",
                 train_csv: Optional[str] = None, val_csv: Optional[str] = None,
                 seg_format: Optional[str] = None, split_family: str = "satdino") -> Any:
    """Open ``spec`` (a catalog name, a bundled subset, or a folder; default the bundled ``ucm-mini``).

    ``kinds`` restricts what the caller can use (a task passes its dataset kinds): anything else is one clear error.
    fMoW needs ``train_csv`` / ``val_csv`` and ``data_root``; a segmentation folder whose name does not say which
    benchmark it is needs ``seg_format``. ``split_family`` (scene datasets): ``satdino`` (SatDINO's official splits,
    the default) or a published family of the catalog spec (``torchgeo``; :mod:`satbench.data.split_families`).
    """
    from satbench.data.scene import DEFAULT_DATASET

    spec = spec or DEFAULT_DATASET
    kind = kinds[0] if len(kinds) == 1 else _kind_of(spec, seg_format)
    if kind not in kinds:
        raise DataError(f"dataset {spec!r} is a {KIND_NAMES.get(kind, kind)} dataset; this task takes "
                        f"{' or '.join(KIND_NAMES.get(k, k) for k in kinds)} datasets")
    if kind != "scene" and split_family != "satdino":
        raise DataError(f"--split {split_family} applies to scene-classification datasets; {spec!r} is a "
                        f"{KIND_NAMES.get(kind, kind)} dataset")
    if kind != "fmow" and (train_csv or val_csv):
        raise DataError("--train-csv/--val-csv go with --dataset fmow")
    if kind == "fmow":
        from satbench.data.fmow import FmowCsvDataset

        if not val_csv:
            raise DataError("--dataset fmow needs --val-csv (and --train-csv to train), as `satbench data fmow-csv` "
                            "writes them, and --data-root")
        return FmowCsvDataset({"train": train_csv, "val": val_csv}, data_root)  # type: ignore[arg-type]
    if kind == "segmentation":
        from satbench.data.segmentation import open_seg_dataset

        if normalization is not None or native_size is not None:
            raise DataError("--normalization / --native-size do not apply to segmentation datasets (the model "
                            "card's normalisation is used, as the recipe says)")
        return open_seg_dataset(spec, seg_format=seg_format, data_root=data_root)
    from satbench.data.scene import open_scene_dataset

    return open_scene_dataset(spec, data_root=data_root, normalization=normalization, native_size=native_size,
                              split_source=split_source, split_family=split_family)
