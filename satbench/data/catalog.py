"""The dataset catalog: one YAML spec per dataset, the one place per-dataset facts live.

Specs are ``satbench/data/catalog/<name>.yaml`` (shipped) plus ``<name>.yaml`` files in the folders listed in
``$SATBENCH_DATASETS`` (a user's own datasets). A spec gives the task kind, native size, classes, SatDINO's
normalisation table, the official split files, the raw-download layout, licence, citation, download sources and
checksums (or how to obtain the data by hand), the label and order the leaderboard uses, and, for segmentation
datasets, the mmseg dataset class, converter, required archives and label range. ``data prepare``, ``data check``,
``data download``, the kNN normalisation rule, the leaderboard, pretraining defaults and the segmentation configs all
read it from here. A user's folder that is not in the catalog becomes a spec at run time (:func:`spec_for_folder`).
A bad spec file is left out, as a bad model card is (:func:`catalog_problems`; :func:`list_datasets` names it once on
stderr); asking for that dataset by name is the file's one-line error.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

from satbench.errors import CatalogError, SatbenchError, UnknownNameError, close_matches  # noqa: F401 (CatalogError re-exported)
from satbench.data.normalization import Normalization, get_normalization, parse_normalization
from satbench.runtime.plugins import load_plugins
from satbench.config.settings import gt, load_settings
from satbench.data.download_spec import DownloadSpec
from satbench.data.split_family_spec import DEFAULT_FAMILY, SplitFamilySpec, check_family_name
from satbench.config.yamlio import read_folder, search_folders

CATALOG_DIR = Path(__file__).resolve().parent / "catalog"
SPLITS_DIR = Path(__file__).resolve().parent / "splits"
BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
KINDS = ("scene", "segmentation", "fmow")


@dataclass(frozen=True)
class NormalizationTable:
    """Per-channel statistics of images in [0, 1], with where they come from."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float] = field(metadata=gt(0))
    source: str = ""


@dataclass(frozen=True)
class SegmentationFacts:
    """How mmsegmentation reads a segmentation benchmark."""

    mmseg_dataset: str
    converter: str
    required_files: tuple[str, ...]
    max_label: int = field(metadata=gt(0))
    channels: str = "RGB"
    crops: tuple[int, ...] = (224, 512)
    reduce_zero_label: bool = True


@dataclass(frozen=True)
class DatasetSpec:
    """Everything satbench knows about one dataset (see the module docstring)."""

    name: str
    kind: Literal["scene", "segmentation", "fmow"]
    label: str
    num_classes: int = field(metadata=gt(0))
    description: str = ""
    aliases: tuple[str, ...] = ()
    order: int = 100
    gsd: Optional[float] = field(default=None, metadata=gt(0))
    native_size: Optional[int] = field(default=None, metadata=gt(0))
    counts: dict[str, int] = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    normalization: Optional[NormalizationTable] = None
    normalization_preset: str = ""
    official_splits: bool = False
    raw_layout: str = ""
    license: str = ""
    citation: str = ""
    homepage: str = ""
    subset_of: str = ""
    bundled: str = ""
    segmentation: Optional[SegmentationFacts] = None
    download: Optional[DownloadSpec] = None
    #: published split families other than the default (SatDINO's official splits): ``--split <family>``
    split_families: dict[str, SplitFamilySpec] = field(default_factory=dict)
    path: str = ""

    def check(self, where: str) -> None:
        if self.kind == "segmentation" and self.segmentation is None:
            raise CatalogError(f"{where}: a segmentation dataset needs a segmentation: block")
        if self.kind != "segmentation" and self.segmentation is not None:
            raise CatalogError(f"{where}: segmentation: applies to kind segmentation only")
        if self.normalization is not None and self.normalization_preset:
            raise CatalogError(f"{where}: give normalization (a table) or normalization_preset, not both")
        if self.classes and len(self.classes) != self.num_classes:
            raise CatalogError(f"{where}: {len(self.classes)} classes listed, num_classes is {self.num_classes}")
        check_download(self, where)
        for family in self.split_families:
            check_family_name(family, f"{where}: split_families")
        if self.split_families and (self.kind != "scene" or self.subset_of):
            raise CatalogError(f"{where}: split_families apply to a full scene dataset (not a subset or another kind)")

    def split_family(self, name: str) -> Optional[SplitFamilySpec]:
        """The published split family ``name`` of this dataset (None for the default family)."""
        if name == DEFAULT_FAMILY:
            return None
        fam = self.split_families.get(name)
        if fam is None:
            have = ", ".join([DEFAULT_FAMILY, *self.split_families])
            raise CatalogError(f"dataset {self.name} has no split family {name!r}; it has: {have}")
        return fam

    @property
    def norm(self) -> Optional[Normalization]:
        """The dataset's normalisation (SatDINO's table for the scene datasets), named after the dataset."""
        if self.normalization is not None:
            t = self.normalization
            return Normalization(self.name, tuple(t.mean), tuple(t.std))  # type: ignore[arg-type]
        if self.normalization_preset:
            return get_normalization(self.normalization_preset)
        if self.subset_of:
            return get_dataset_spec(self.subset_of).norm
        return None

    @property
    def is_subset(self) -> bool:
        """A subset of a benchmark dataset (e.g. the bundled ucm-mini): never comparable to the paper's numbers."""
        return bool(self.subset_of)

    @property
    def protocol_name(self) -> str:
        """The dataset whose protocol facts apply (the parent of a subset)."""
        return self.subset_of or self.name

    @property
    def official_split_dir(self) -> Optional[Path]:
        """``satbench/data/splits/<name>/`` when satbench ships the official split files."""
        d = SPLITS_DIR / self.protocol_name
        return d if self.official_splits and d.is_dir() else None

    @property
    def bundled_dir(self) -> Optional[Path]:
        return BUNDLED_DIR / self.bundled if self.bundled else None


def _read_spec(path: Path) -> DatasetSpec:
    from satbench.config.yamlio import read_yaml

    where = f"dataset spec {path}"
    data = read_yaml(path, what="dataset spec", error=CatalogError)
    spec = load_settings(DatasetSpec, data, where, error=CatalogError)
    if spec.name != path.stem:
        raise CatalogError(f"{where} declares name {spec.name!r}; the file must be named {spec.name}.yaml")
    return replace(spec, path=str(path))


def catalog_folders() -> list[Path]:
    """The shipped catalog, then the folders in ``$SATBENCH_DATASETS`` (os.pathsep-separated)."""
    return search_folders(CATALOG_DIR, "SATBENCH_DATASETS", "dataset specs", CatalogError)


@lru_cache(maxsize=None)
def _specs_in(folder: str) -> tuple[tuple[DatasetSpec, ...], tuple[tuple[str, str], ...]]:
    """``(valid specs, (file, one-line problem) of each bad spec)`` of one folder."""
    specs, problems = read_folder(folder, _read_spec)
    return tuple(specs), tuple(problems)


#: Problems already reported on stderr in this process (each bad spec is named once, not at every catalog look-up).
_WARNED: set[str] = set()


def _load_catalog() -> tuple[dict[str, DatasetSpec], dict[str, str]]:
    """``(valid specs by name, problems by spec file)``. A bad spec file (malformed, a name defined twice, a subset
    of an unknown dataset) is left out, as a bad model card is: it never breaks the other datasets."""
    load_plugins()
    out: dict[str, DatasetSpec] = {}
    problems: dict[str, str] = {}
    for folder in catalog_folders():
        specs, bad = _specs_in(str(folder))
        problems.update(bad)
        for spec in specs:
            if spec.name in out:
                problems[spec.path] = (f"dataset spec {spec.path}: dataset {spec.name!r} is already defined by "
                                       f"{out[spec.name].path}")
                continue
            out[spec.name] = spec
    while True:  # a subset of a dataset that was left out is left out too
        orphans = [s for s in out.values() if s.subset_of and s.subset_of not in out]
        if not orphans:
            break
        for spec in orphans:
            problems[spec.path] = f"dataset spec {spec.path}: subset_of names unknown dataset {spec.subset_of!r}"
            del out[spec.name]
    return out, problems


def _warn(problems: dict[str, str]) -> None:
    for problem in problems.values():
        if problem not in _WARNED:
            _WARNED.add(problem)
            print(f"satbench: warning: skipped {problem}", file=sys.stderr)


def catalog_problems() -> dict[str, str]:
    """Dataset spec files that were left out of the catalog, with the one-line reason for each."""
    return _load_catalog()[1]


def list_datasets(kind: Optional[str] = None) -> list[DatasetSpec]:
    """Every catalog entry (optionally of one kind), in leaderboard order. A spec file that was left out is named
    once on stderr (``satbench: warning: skipped dataset spec <file>: <problem>``), as ``satbench models`` names a
    bad model card."""
    cat, problems = _load_catalog()
    _warn(problems)
    return sorted((s for s in cat.values() if kind is None or s.kind == kind), key=lambda s: (s.order, s.name))


def find_dataset_spec(name: str) -> Optional[DatasetSpec]:
    """The spec of ``name`` (or an alias, case-insensitive), or None. Asking by name for a spec file that was left
    out of the catalog (:func:`catalog_problems`) is that file's one-line error; other bad files do not matter here."""
    cat, problems = _load_catalog()
    if name in cat:
        return cat[name]
    low = name.lower()
    for spec in cat.values():
        if low == spec.name.lower() or low in (a.lower() for a in spec.aliases):
            return spec
    for path, problem in problems.items():
        if Path(path).stem.lower() == low:
            raise CatalogError(problem)
    return None


def get_dataset_spec(name: str, kind: Optional[str] = None) -> DatasetSpec:
    """The spec of ``name``; unknown names (or a spec of another kind) are an error listing the known ones."""
    spec = find_dataset_spec(name)
    if spec is None or (kind is not None and spec.kind != kind):
        names = [s.name for s in list_datasets(kind)]
        what = f"{kind} dataset" if kind else "dataset"
        raise UnknownNameError(f"unknown {what} {name!r}{close_matches(name, names)}; known: {', '.join(names)}")
    return spec


def parent_spec(spec: DatasetSpec) -> DatasetSpec:
    """The benchmark dataset a subset belongs to (the spec itself otherwise)."""
    return get_dataset_spec(spec.subset_of) if spec.subset_of else spec


def spec_for_folder(root: Path, *, native_size: Optional[int] = None,
                    normalization: Optional[Normalization] = None, num_classes: int = 0) -> DatasetSpec:
    """A catalog entry made at run time for a user's scene folder that is not in the catalog."""
    table = (NormalizationTable(tuple(normalization.mean), tuple(normalization.std), f"given: {normalization.name}")
             if normalization is not None else None)
    return DatasetSpec(name=root.name, kind="scene", label=root.name, num_classes=max(1, num_classes),
                       description=f"user folder {root}", native_size=native_size, normalization=table,
                       path=str(root))


def resolve_normalization(spec: str) -> Normalization:
    """A user's ``--normalization`` string: a model preset, a catalog dataset's table, or ``mean=..;std=..``."""
    if "=" not in spec:
        ds = find_dataset_spec(spec)
        if ds is not None and ds.norm is not None:
            return ds.norm
    return parse_normalization(spec)


def check_download(spec: "DatasetSpec", where: str) -> None:
    """Rules across a spec's ``download:`` section and its other keys (called from the spec's own check)."""

    dl: Optional[DownloadSpec] = spec.download
    if dl is None or not dl.files:
        return
    missing = [k for k in ("license", "citation", "homepage") if not getattr(spec, k)]
    if missing:
        raise CatalogError(f"{where}: a dataset with download files needs {', '.join(missing)} (shown before the "
                           f"first download)")
    if spec.kind == "fmow" or (spec.kind == "scene" and (not spec.official_splits or spec.bundled)):
        raise CatalogError(f"{where}: download.files need a dataset `data prepare` can convert (kind segmentation, "
                           f"or kind scene with official_splits: true)")
    if spec.segmentation is not None:
        names = tuple(f.filename for f in dl.files)
        if sorted(names) != sorted(spec.segmentation.required_files):
            raise CatalogError(f"{where}: download.files ({', '.join(names)}) must be the files segmentation."
                               f"required_files names ({', '.join(spec.segmentation.required_files)})")
