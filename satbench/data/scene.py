"""The six scene-classification datasets of SatDINO's kNN and fine-tuning tables, in the official layout.

Layout: ``<root>/<name>/images/<class>/<file>``, with ``train.txt`` and ``val.txt`` in ``<root>/<name>/``; split lines look like
``./Forest/Forest_27.jpg`` (relative to ``images/``). The class of a line is its second-to-last path component; the class index
is the position in the *sorted* class-folder names (the official code uses unsorted ``os.listdir``, which does not change kNN
accuracy; sorting makes indices deterministic). The dataset name is the folder name, as in the official code.

Split files: by default the folder's own ``train.txt``/``val.txt`` (when present), else the official ones shipped with satbench
(``satbench/data/splits/<name>/``). Records carry both files' sha256 and whether they match the official split
(``exact``, ``modulo-extension`` for e.g. ``.tif`` entries re-encoded as ``.jpg``, or ``no``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any, Optional

from ..errors import DataError, UnknownNameError, close_matches
from ..io import sha256_bytes
from ..normalization import Normalization, get_normalization
from ..resources import bundled_data_dir

SPLITS_DIR = Path(__file__).resolve().parent / "splits"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


@dataclass(frozen=True)
class SceneDatasetInfo:
    """Hard-coded facts of a scene dataset (spec 3.2): native size, class count, normalisation key."""

    name: str
    native_size: int
    num_classes: int
    normalization: str
    train_count: int
    val_count: int
    description: str = ""

    @property
    def official_split_dir(self) -> Path:
        return SPLITS_DIR / self.name


DATASETS: dict[str, SceneDatasetInfo] = {d.name: d for d in [
    SceneDatasetInfo("eurosat", 64, 10, "eurosat", 21600, 5400, "EuroSAT RGB (Sentinel-2, 10 m)"),
    SceneDatasetInfo("resisc45", 256, 45, "resisc45", 25200, 6300, "NWPU-RESISC45"),
    SceneDatasetInfo("uc_merced", 256, 21, "uc_merced", 1680, 420, "UC Merced Land Use (0.3 m)"),
    SceneDatasetInfo("whu-rs19", 600, 19, "whu-rs19", 799, 206, "WHU-RS19 (all 1,005 images)"),
    SceneDatasetInfo("rs_c11", 512, 11, "rs_c11", 981, 251, "RS_C11"),
    SceneDatasetInfo("siri-whu", 200, 12, "siri-whu", 1920, 480, "SIRI-WHU"),
]}

#: Bundled real subsets: name -> (folder under satbench/data/bundled, the full dataset whose protocol facts apply).
BUNDLED: dict[str, str] = {"ucm-mini": "uc_merced"}
ALIASES = {"ucmerced": "uc_merced", "uc-merced": "uc_merced", "ucm": "uc_merced", "nwpu-resisc45": "resisc45",
           "whu_rs19": "whu-rs19", "rs-c11": "rs_c11", "siri_whu": "siri-whu", "siriwhu": "siri-whu"}
DEFAULT_DATASET = "ucm-mini"


def get_dataset_info(name: str) -> SceneDatasetInfo:
    """Facts of a known dataset (aliases and bundled subsets resolve to their full dataset)."""
    key = BUNDLED.get(name, ALIASES.get(name.lower(), name.lower()))
    if key not in DATASETS:
        names = sorted(DATASETS) + sorted(BUNDLED)
        raise UnknownNameError(f"unknown dataset {name!r}{close_matches(name, names)}; known: {', '.join(names)}")
    return DATASETS[key]


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int
    line: int  # 1-based line number in the split file


@dataclass
class SplitFile:
    path: Path
    sha256: str
    lines: list[tuple[int, str]]  # (1-based line number, entry)
    official_match: str = "no"


def _read_split(path: Path) -> SplitFile:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"split file {path} cannot be read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"split file {path} is not UTF-8 text") from None
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    if not lines:
        raise DataError(f"split file {path} has no entries")
    return SplitFile(path, sha256_bytes(data), lines)


def _entry_rel(entry: str, split_path: Path, line_no: int) -> PurePosixPath:
    e = entry.replace("\\", "/")
    p = PurePosixPath(e)
    if p.is_absolute() or (len(e) > 1 and e[1] == ":"):
        raise DataError(f"{split_path}:{line_no}: entry {entry!r} is an absolute path; expected ./<class>/<file>")
    parts = [x for x in p.parts if x != "."]
    if ".." in parts:
        raise DataError(f"{split_path}:{line_no}: entry {entry!r} points outside the dataset ('..')")
    if len(parts) < 2:
        raise DataError(f"{split_path}:{line_no}: entry {entry!r} has no class folder; expected ./<class>/<file>")
    return PurePosixPath(*parts)


def _official_match(own: SplitFile, official: Optional[SplitFile]) -> str:
    if official is None:
        return "no"
    if own.sha256 == official.sha256:
        return "exact"
    a = [os.path.splitext(e)[0] for _, e in own.lines]
    b = [os.path.splitext(e)[0] for _, e in official.lines]
    return "modulo-extension" if a == b else "no"


@dataclass
class SceneDataset:
    """A scene-classification dataset folder with its train/val split files.

    Use :func:`open_scene_dataset`. ``samples(split)`` validates every entry (existing file, known class) and raises a
    :class:`DataError` naming the split file, line and entry at fault.
    """

    name: str
    root: Path
    info: Optional[SceneDatasetInfo]
    native_size: Optional[int]  # None only when opened with require_stats=False
    normalization: Optional[Normalization]
    splits: dict[str, SplitFile] = field(default_factory=dict)
    split_source: str = "folder"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @cached_property
    def classes(self) -> list[str]:
        if not self.images_dir.is_dir():
            raise DataError(f"dataset folder {self.root} has no images/ folder")
        classes = sorted(d.name for d in self.images_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not classes:
            raise DataError(f"{self.images_dir} has no class folders")
        return classes

    def samples(self, split: str) -> list[Sample]:
        """The (path, label) list of ``split`` in split-file order, every entry checked."""
        if split not in self.splits:
            raise DataError(f"dataset {self.root} has no {split}.txt")
        sf = self.splits[split]
        index = {c: i for i, c in enumerate(self.classes)}
        out, missing = [], []
        for line_no, entry in sf.lines:
            rel = _entry_rel(entry, sf.path, line_no)
            cls = rel.parts[-2]
            if cls not in index:
                raise DataError(f"{sf.path}:{line_no}: entry {entry!r} names class {cls!r}, which has no folder in {self.images_dir}")
            path = self.images_dir / rel
            if not path.is_file():
                missing.append((line_no, entry))
                continue
            out.append(Sample(path, index[cls], line_no))
        if missing:
            first = ", ".join(f"line {n}: {e}" for n, e in missing[:3])
            raise DataError(f"{sf.path}: {len(missing)} of {len(sf.lines)} entries have no file under {self.images_dir} ({first})")
        return out

    def check(self) -> dict[str, Any]:
        """Validate the folder: split entries exist, every class is non-empty; returns counts."""
        report: dict[str, Any] = {"root": str(self.root), "name": self.name, "classes": len(self.classes)}
        used: dict[str, int] = {c: 0 for c in self.classes}
        for split in ("train", "val"):
            s = self.samples(split)
            report[split] = len(s)
            for smp in s:
                used[self.classes[smp.label]] += 1
        empty = [c for c, n in used.items() if n == 0]
        if empty:
            raise DataError(f"dataset {self.root}: class folder(s) with no split entries: {', '.join(empty[:5])}")
        if self.info is not None and self.info.num_classes != len(self.classes) and self.name not in BUNDLED:
            raise DataError(f"dataset {self.root}: {len(self.classes)} class folders, expected {self.info.num_classes} for {self.info.name}")
        return report

    def describe(self) -> dict[str, Any]:
        """The dataset as recorded in results."""
        return {
            "name": self.name,
            "protocol_dataset": self.info.name if self.info else None,
            "root": str(self.root),
            "native_size": self.native_size,
            "num_classes": len(self.classes),
            "normalization": self.normalization.as_dict() if self.normalization is not None else None,
            "split_source": self.split_source,
            "split_hashes": {k: v.sha256 for k, v in self.splits.items()},
            "split_files": {k: str(v.path) for k, v in self.splits.items()},
            "official_split": {k: v.official_match for k, v in self.splits.items()},
        }


def default_data_root() -> Optional[Path]:
    """``$SATBENCH_DATA``: where ``--dataset NAME`` looks for ``<root>/<name>/``."""
    v = os.environ.get("SATBENCH_DATA")
    return Path(v) if v else None


def open_scene_dataset(spec: Optional[str] = None, *, data_root: Optional[str | Path] = None,
                       normalization: Optional[Normalization] = None, native_size: Optional[int] = None,
                       split_source: str = "auto", require_stats: bool = True) -> SceneDataset:
    """Open a dataset by bundled name (``ucm-mini``, the default), by name under ``data_root``, or by folder path.

    A folder whose name is not a known dataset needs ``normalization`` and ``native_size`` (nothing is guessed),
    unless ``require_stats=False`` (tasks with fixed crop sizes): they then stay ``None`` where not given.
    ``split_source``: ``auto`` (the folder's own split files, else the shipped official ones), ``folder`` or ``official``.
    """
    spec = spec or DEFAULT_DATASET
    if spec in BUNDLED:
        root = bundled_data_dir() / spec
        name = spec
    else:
        p = Path(spec).expanduser()
        if p.is_dir():
            root = p
        else:
            base = Path(data_root) if data_root else default_data_root()
            if os.sep in spec or spec.startswith("."):
                raise DataError(f"dataset folder {spec} does not exist")
            get_dataset_info(spec)  # unknown names fail here with close matches
            if base is None:
                raise DataError(f"dataset {spec!r}: no folder given; pass --dataset /path/to/{spec} or set --data-root / $SATBENCH_DATA "
                                f"(prepare raw downloads with `satbench data prepare {spec} --src DIR --out ROOT`)")
            root = base / get_dataset_info(spec).name
            if not root.is_dir():
                raise DataError(f"dataset {spec!r} not found at {root}; prepare it with `satbench data prepare {spec} --src DIR --out {base}`")
        name = root.resolve().name
        if name == "images":
            raise DataError(f"{root} is an images/ folder; pass its parent (the folder holding images/, train.txt and val.txt)")
    root = root.resolve()
    try:
        info: Optional[SceneDatasetInfo] = get_dataset_info(name)
    except UnknownNameError:
        info = None
    if info is None and require_stats and (normalization is None or native_size is None):
        raise DataError(f"dataset folder {root}: {name!r} is not a known dataset ({', '.join(DATASETS)}); pass --normalization "
                        f"(a preset or mean=..;std=..) and --native-size to evaluate it")
    norm = normalization or (get_normalization(info.normalization) if info is not None else None)
    native = native_size or (info.native_size if info is not None else None)
    if split_source not in ("auto", "folder", "official"):
        raise DataError(f"split_source must be auto, folder or official, got {split_source!r}")
    splits: dict[str, SplitFile] = {}
    used_source = set()
    for split in ("train", "val"):
        own = root / f"{split}.txt"
        official_path = info.official_split_dir / f"{split}.txt" if info is not None else None
        official = _read_split(official_path) if official_path is not None and official_path.is_file() else None
        if split_source == "official" or (split_source == "auto" and not own.is_file()):
            if official is None:
                raise DataError(f"dataset folder {root} has no {split}.txt and satbench ships no official split for {name!r}")
            sf, src = official, "official"
            sf.official_match = "exact"
        else:
            if not own.is_file():
                raise DataError(f"dataset folder {root} has no {split}.txt")
            sf, src = _read_split(own), "folder"
            sf.official_match = _official_match(sf, official)
        splits[split] = sf
        used_source.add(src)
    return SceneDataset(name=name, root=root, info=info, native_size=native, normalization=norm, splits=splits,
                        split_source="+".join(sorted(used_source)))


def compute_normalization(dataset: SceneDataset, split: str = "train", progress: bool = True) -> Normalization:
    """Per-dataset statistics the way SatDINO's tables appear to be made (spec 2.5, [INF]): the mean over images of each
    image's channel means, and the mean over images of each image's channel (population) stds, in [0, 1] at native
    resolution, over ``split``. Returned as ``Normalization("computed:<name>:<split>", ...)``; record it."""
    import numpy as np
    from tqdm.auto import tqdm

    from .images import read_rgb

    samples = dataset.samples(split)
    means, stds = [], []
    for s in tqdm(samples, desc=f"stats {dataset.name} {split}", unit="img", disable=not progress, leave=False):
        a = np.asarray(read_rgb(s.path), dtype=np.float64).reshape(-1, 3) / 255.0
        means.append(a.mean(axis=0))
        stds.append(a.std(axis=0))
    if not means:
        raise DataError(f"dataset {dataset.root}: the {split} split is empty; cannot compute normalization statistics")
    mean = tuple(float(v) for v in np.mean(means, axis=0))
    std = tuple(float(v) for v in np.mean(stds, axis=0))
    return Normalization(f"computed:{dataset.name}:{split}", mean, std)  # type: ignore[arg-type]
