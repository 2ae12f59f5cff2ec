"""Segmentation datasets in mmseg's layout (``img_dir/{train,val}``, ``ann_dir/{train,val}`` PNG tiles).

Reading the folder needs no mmsegmentation: :func:`check_data_root` validates it and counts the tiles;
:class:`SegDataset` is what the segmentation task receives (catalog facts, folder, counts, whether train and val are
the same tiles). Training goes through :mod:`satbench.seg`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from satbench.errors import DataError
from satbench.data.catalog import DatasetSpec, get_dataset_spec, list_datasets


def check_data_root(root: Path, dataset: str) -> dict[str, int]:
    """Check an mmseg-layout folder (``img_dir/{train,val}``, ``ann_dir/{train,val}``); returns tile counts."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"segmentation data folder {root} does not exist (expected img_dir/ and ann_dir/ as "
                        f"`satbench data prepare {dataset}` writes them)")
    counts = {}
    for split in ("train", "val"):
        for sub in ("img_dir", "ann_dir"):
            d = root / sub / split
            if not d.is_dir():
                raise DataError(f"{d} is missing (expected {root}/img_dir/{{train,val}} and {root}/ann_dir/{{train,val}})")
        imgs = sorted(p.stem for p in (root / "img_dir" / split).glob("*.png"))
        anns = {p.stem for p in (root / "ann_dir" / split).glob("*.png")}
        if not imgs:
            raise DataError(f"{root / 'img_dir' / split} holds no .png tiles")
        lacking = [s for s in imgs if s not in anns]
        if lacking:
            raise DataError(f"{root / 'ann_dir' / split}: no label for {len(lacking)} tile(s), e.g. {lacking[0]}.png")
        counts[split] = len(imgs)
    return counts


def _fingerprint(folder: Path) -> list[tuple[str, int]]:
    return sorted((p.name, p.stat().st_size) for p in folder.glob("*.png"))


def default_seg_root(name: str) -> Optional[Path]:
    """``$SATBENCH_DATA/<name>`` when ``SATBENCH_DATA`` is set, else None."""
    base = os.environ.get("SATBENCH_DATA")
    return Path(base) / name if base else None


@dataclass
class SegDataset:
    """A segmentation benchmark folder: its catalog spec, its root and tile counts."""

    spec: DatasetSpec
    root: Path
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def train_equals_val(self) -> bool:
        """True when the train and val tiles are the same files (same names and sizes): a smoke run, never compared
        with a paper."""
        return (_fingerprint(self.root / "img_dir" / "train") == _fingerprint(self.root / "img_dir" / "val"))

    def describe(self) -> dict[str, Any]:
        seg = self.spec.segmentation
        assert seg is not None
        expected = dict(self.spec.counts)
        return {"name": self.spec.name, "kind": "segmentation", "root": str(self.root), "counts": dict(self.counts),
                "mmseg_type": seg.mmseg_dataset, "num_classes": self.spec.num_classes, "channels": seg.channels,
                "is_subset": bool(expected) and self.counts != expected, "expected_counts": expected,
                "train_equals_val": self.train_equals_val}


def resolve_seg_dataset(spec: str, *, seg_format: Optional[str] = None,
                        data_root: Optional[str | Path] = None) -> tuple[str, Path]:
    """``potsdam|vaihingen|loveda`` (under ``data_root`` / ``$SATBENCH_DATA``) or a folder -> (dataset name, root).

    ``seg_format`` tells which benchmark a folder holds when its name does not.
    """
    names = [s.name for s in list_datasets("segmentation")]
    if spec in names:
        root = Path(data_root) / spec if data_root else default_seg_root(spec)
        if root is None:
            raise DataError(f"--dataset {spec}: set SATBENCH_DATA (or --data-root) to the folder holding {spec}/ "
                            f"(as `satbench data prepare {spec}` writes it) or pass the dataset folder itself")
        return seg_format or spec, root
    root = Path(spec).expanduser()
    if not root.is_dir():
        raise DataError(f"--dataset {spec!r} is neither {', '.join(names)} nor an existing folder")
    if seg_format is None:
        hits = [k for k in names if k in root.resolve().name.lower()]
        if len(hits) != 1:
            raise DataError(f"cannot tell which dataset {root} holds from its name; pass --seg-format "
                            f"{'|'.join(names)}")
        seg_format = hits[0]
    get_dataset_spec(seg_format, kind="segmentation")
    return seg_format, root


def open_seg_dataset(spec: str, *, seg_format: Optional[str] = None, data_root: Optional[str | Path] = None) -> SegDataset:
    """The segmentation benchmark ``spec`` names (see :func:`resolve_seg_dataset`), its tile counts checked."""
    kind, root = resolve_seg_dataset(spec, seg_format=seg_format, data_root=data_root)
    return SegDataset(get_dataset_spec(kind, kind="segmentation"), root, check_data_root(root, kind))


@dataclass(frozen=True)
class SegDatasetInfo:
    """One segmentation benchmark as mmseg reads it (a view of its catalog spec, ``satbench/data/catalog/``)."""

    name: str
    dataset_type: str
    num_classes: int
    folder: str
    converter: str
    expected: dict[str, int]
    channels: str = "RGB"
    required_files: tuple[str, ...] = ()
    max_label: int = 0
    classes: tuple[str, ...] = ()


def _info(spec: DatasetSpec) -> SegDatasetInfo:
    seg = spec.segmentation
    assert seg is not None
    return SegDatasetInfo(spec.name, seg.mmseg_dataset, spec.num_classes, spec.name, seg.converter, dict(spec.counts),
                          seg.channels, tuple(seg.required_files), seg.max_label, tuple(spec.classes))


def seg_datasets() -> dict[str, SegDatasetInfo]:
    """Every segmentation dataset of the catalog, by name."""
    return {s.name: _info(s) for s in list_datasets("segmentation")}


def get_seg_dataset(name: str) -> SegDatasetInfo:
    """Dataset info by name; unknown names list the known ones."""
    return _info(get_dataset_spec(name, kind="segmentation"))
