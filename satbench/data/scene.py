"""The six scene-classification datasets of SatDINO's kNN and fine-tuning tables, in the official layout.

Layout: ``<root>/<name>/images/<class>/<file>``, with ``train.txt`` and ``val.txt`` in ``<root>/<name>/``; split lines look like
``./Forest/Forest_27.jpg`` (relative to ``images/``). The class of a line is its second-to-last path component; the class index
is the position in the *sorted* class-folder names (the official code uses unsorted ``os.listdir``, which does not change kNN
accuracy; sorting makes indices deterministic). The dataset name is the folder name, as in the official code.

Split files: by default the folder's own ``train.txt``/``val.txt`` (when present), else the official ones shipped with satbench
(``satbench/data/splits/<name>/``): the split family ``satdino``, whose kNN reports the val split. Records carry both files'
sha256 and whether they match the official split (``exact``, ``modulo-extension`` for e.g. ``.tif`` entries re-encoded as
``.jpg``, or ``no``). ``split_family="torchgeo"`` opens a catalog dataset on TorchGeo's published train/val/test files
instead (:mod:`satbench.data.split_families`: downloaded on first use, md5 checked before a line is read, each line mapped to
the folder's ``./<class>/<file>``); its kNN reports the test split, val is held out, and ``official_split`` then says whether
each split matches the family's published file (``exact``, or ``modulo-extension`` when the folder's images have another
extension than the names in the file).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any, Optional

from satbench.errors import DataError, UnknownNameError
from satbench.io.bounded import read_bytes_or_fail
from satbench.io.hashing import sha256_bytes
from satbench.data.normalization import Normalization
from satbench.data.catalog import SPLITS_DIR, DatasetSpec, find_dataset_spec, get_dataset_spec, list_datasets, spec_for_folder
from satbench.data.images import IMAGE_EXTENSIONS, image_size
from satbench.data.split_family_spec import DEFAULT_FAMILY

DEFAULT_DATASET = "ucm-mini"
#: Longest split-file entry accepted (a path of a few folders and a file name; anything longer is not a split line).
MAX_ENTRY_CHARS = 1024
#: A split file larger than this is not a split file (RESISC45's 31,500 lines are 1.4 MB).
MAX_SPLIT_BYTES = 64 << 20

__all__ = ["SceneDataset", "Sample", "SplitFile", "open_scene_dataset", "get_dataset_info", "compute_normalization",
           "default_data_root", "IMAGE_EXTENSIONS", "SPLITS_DIR", "DEFAULT_DATASET"]


def get_dataset_info(name: str) -> DatasetSpec:
    """The catalog spec of a scene (or fMoW) dataset whose protocol facts apply to ``name`` (a subset resolves to
    its parent); unknown names list the known ones."""
    spec = find_dataset_spec(name)
    if spec is None or spec.kind == "segmentation":
        names = [s.name for s in list_datasets() if s.kind != "segmentation"]
        from satbench.errors import close_matches

        raise UnknownNameError(f"unknown dataset {name!r}{close_matches(name, names)}; known: {', '.join(names)}")
    return get_dataset_spec(spec.subset_of) if spec.subset_of else spec


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


def split_file_present(path: Path) -> bool:
    """True when something is at ``path`` (a FIFO, a link or a folder too: reading it then says what is wrong with it,
    instead of calling it missing)."""
    return os.path.lexists(path)


def _read_split(path: Path) -> SplitFile:
    """A split file: a regular file of at most :data:`MAX_SPLIT_BYTES` of UTF-8 lines (never blocks on a FIFO)."""
    data = read_bytes_or_fail(path, MAX_SPLIT_BYTES, lead=f"split file {path}", error=DataError)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"split file {path} is not UTF-8 text") from None
    lines = [(i + 1, ln.strip()) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    if not lines:
        raise DataError(f"split file {path} has no entries")
    return SplitFile(path, sha256_bytes(data), lines)


def _entry_rel(entry: str, split_path: Path, line_no: int) -> PurePosixPath:
    if len(entry) > MAX_ENTRY_CHARS:
        raise DataError(f"{split_path}:{line_no}: entry of {len(entry)} characters; split lines are ./<class>/<file> "
                        f"(at most {MAX_ENTRY_CHARS} characters)")
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
    """A scene-classification dataset folder with its train/val split files and its catalog spec.

    Use :func:`open_scene_dataset`. ``samples(split)`` validates every entry (existing file, known class) and raises a
    :class:`DataError` naming the split file, line and entry at fault. ``spec`` is the catalog entry (for a folder that
    is not in the catalog, one made at run time); ``protocol_name`` is the dataset whose protocol facts apply.
    ``native_size`` / ``normalization`` may be None for a folder that is not in the catalog when nothing was given
    (tasks that need them decide: the native size is read from the images, the kNN normalisation is computed).
    """

    name: str
    root: Path
    spec: DatasetSpec
    native_size: Optional[int]
    normalization: Optional[Normalization]
    splits: dict[str, SplitFile] = field(default_factory=dict)
    split_source: str = "folder"
    in_catalog: bool = True
    facts_source: dict[str, str] = field(default_factory=dict)
    #: the split family (``satdino``: SatDINO's official train/val; ``torchgeo``: TorchGeo's train/val/test) and the
    #: split a kNN run reports (``val``; ``test`` for a family with a test split)
    split_family: str = DEFAULT_FAMILY
    eval_split: str = "val"
    #: a published family's files as fetched: {split: {filename, url, md5, sha256, how, revision}} and the mapping
    family_files: dict[str, Any] = field(default_factory=dict)
    #: each split's checked sample list, computed once per opened dataset (a run asks for it from several steps)
    _checked: dict[str, list[Sample]] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def protocol_name(self) -> str:
        """The dataset whose protocol facts (native size, normalisation, result keys) apply."""
        return self.spec.protocol_name if self.in_catalog else self.name

    @property
    def is_subset(self) -> bool:
        """A subset of its benchmark: a bundled subset, or a catalog-named folder with fewer classes or split lines
        than the benchmark (recorded; never compared with a paper)."""
        if self.spec.is_subset:
            return True
        if not self.in_catalog:
            return False
        if len(self.classes) != self.spec.num_classes:
            return True
        if self.split_family != DEFAULT_FAMILY:  # the published files are checked by md5: complete by construction
            return False
        counts = self.spec.counts
        return bool(counts) and any(len(self.splits[s].lines) != counts.get(s, len(self.splits[s].lines))
                                    for s in self.splits)

    @property
    def info(self) -> Optional[DatasetSpec]:
        """The catalog spec whose protocol facts apply (a subset's parent), or None for a user folder."""
        return get_dataset_info(self.spec.name) if self.in_catalog else None

    @cached_property
    def classes(self) -> list[str]:
        if not self.images_dir.is_dir():
            raise DataError(f"dataset folder {self.root} has no images/ folder")
        classes = sorted(d.name for d in self.images_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not classes:
            raise DataError(f"{self.images_dir} has no class folders")
        return classes

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def split_sha256(self, split: str) -> str:
        return self.splits[split].sha256

    def samples(self, split: str) -> list[Sample]:
        """The (path, label) list of ``split`` in split-file order, every entry checked (once per opened dataset: the
        check stats every file, so later calls return a copy of the first result)."""
        if split not in self._checked:
            self._checked[split] = self._check_samples(split)
        return list(self._checked[split])

    def _check_samples(self, split: str) -> list[Sample]:
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
        for split in self.splits:
            s = self.samples(split)
            report[split] = len(s)
            for smp in s:
                used[self.classes[smp.label]] += 1
        empty = [c for c, n in used.items() if n == 0]
        if empty:
            raise DataError(f"dataset {self.root}: class folder(s) with no split entries: {', '.join(empty[:5])}")
        if self.is_subset and not self.spec.is_subset:
            report["subset"] = (f"{len(self.classes)} of {self.spec.num_classes} classes, "
                                f"{report['train']} / {report['val']} images: a subset of {self.spec.name}")
        return report

    def measured_native_size(self) -> int:
        """The common side of every image of both splits, read from the file headers (no decode); an error naming
        two differing images when they are not all the same square size."""
        sizes: dict[tuple[int, int], Path] = {}
        for split in self.splits:
            for smp in self.samples(split):
                sizes.setdefault(image_size(smp.path), smp.path)
                if len(sizes) > 1:
                    break
        if len(sizes) != 1:
            (a, pa), (b, pb) = list(sizes.items())[:2]
            raise DataError(f"dataset folder {self.root}: images differ in size ({pa.name} is {a[0]}x{a[1]}, "
                            f"{pb.name} is {b[0]}x{b[1]}); pass --native-size")
        (w, h), p = next(iter(sizes.items()))
        if w != h:
            raise DataError(f"dataset folder {self.root}: images are {w}x{h}, not square; pass --native-size")
        return w

    def ensure_native_size(self) -> int:
        """The native size; for a folder given without one, read from the images (recorded as measured)."""
        if self.native_size is None:
            self.native_size = self.measured_native_size()
            self.facts_source["native_size"] = "measured from the images"
        return self.native_size

    def describe(self) -> dict[str, Any]:
        """The dataset as recorded in results."""
        return {
            "name": self.name,
            "kind": "scene",
            "protocol_dataset": self.protocol_name if self.in_catalog else None,
            "root": str(self.root),
            "native_size": self.native_size,
            "num_classes": len(self.classes),
            "classes": list(self.classes),  # label order: per-class plots and tables name the classes
            "normalization": self.normalization.as_dict() if self.normalization is not None else None,
            "split_source": self.split_source,
            "split_hashes": {k: v.sha256 for k, v in self.splits.items()},
            "split_files": {k: str(v.path) for k, v in self.splits.items()},
            "official_split": {k: v.official_match for k, v in self.splits.items()},
            "is_subset": self.is_subset,
            "in_catalog": self.in_catalog,
            "split_family": self.split_family,
            **({"split_family_files": dict(self.family_files)} if self.family_files else {}),
            **({"facts_source": dict(self.facts_source)} if self.facts_source else {}),
        }


def default_data_root() -> Optional[Path]:
    """``$SATBENCH_DATA``: where ``--dataset NAME`` looks for ``<root>/<name>/``."""
    v = os.environ.get("SATBENCH_DATA")
    return Path(v) if v else None


def _locate(spec_or_path: str, data_root: Optional[str | Path]) -> tuple[Path, Optional[DatasetSpec]]:
    """(dataset folder, catalog spec or None) for a bundled name, a name under the data root, or a folder."""
    cat = find_dataset_spec(spec_or_path)
    if cat is not None and cat.bundled_dir is not None:
        return cat.bundled_dir, cat
    p = Path(spec_or_path).expanduser()
    if p.is_dir():
        root = p.resolve()
        if root.name == "images":
            raise DataError(f"{p} is an images/ folder; pass its parent (the folder holding images/, train.txt and val.txt)")
        found = find_dataset_spec(root.name)  # the official code names a dataset by its folder
        return root, found if found is not None and found.kind == "scene" and not found.bundled else None
    if os.sep in spec_or_path or spec_or_path.startswith("."):
        raise DataError(f"dataset folder {spec_or_path} does not exist")
    spec = get_dataset_info(spec_or_path) if cat is None or cat.kind == "segmentation" else cat
    if spec.kind != "scene":
        raise DataError(f"dataset {spec.name!r} is a {spec.kind} dataset, not a scene-classification folder")
    base = Path(data_root) if data_root else default_data_root()
    if base is None:
        raise DataError(f"dataset {spec_or_path!r}: no folder given; pass --dataset /path/to/{spec.name} or set --data-root / "
                        f"$SATBENCH_DATA (get it with `satbench data download {spec.name}` or prepare a raw download with "
                        f"`satbench data prepare {spec.name} --src DIR --out ROOT`)")
    root = base / spec.name
    if not root.is_dir():
        raise DataError(f"dataset {spec_or_path!r} not found at {root}; get it with `satbench data download {spec.name} "
                        f"--root {base}` or `satbench data prepare {spec.name} --src DIR --out {base}`")
    return root.resolve(), spec


def open_scene_dataset(spec: Optional[str] = None, *, data_root: Optional[str | Path] = None,
                       normalization: Optional[Normalization] = None, native_size: Optional[int] = None,
                       split_source: str = "auto", require_stats: bool = False,
                       split_family: str = DEFAULT_FAMILY, progress: bool = False) -> SceneDataset:
    """Open a dataset by bundled name (``ucm-mini``, the default), by name under ``data_root``, or by folder path.

    A catalog dataset brings its native size and normalisation (``native_size`` / ``normalization`` override them,
    recorded). A folder that is not in the catalog is a dataset made at run time: its native size and normalisation
    stay None unless given (a task that needs them reads the size from the images, :meth:`SceneDataset.ensure_native_size`,
    or computes the statistics, and records it).
    ``require_stats=True`` makes a missing size or normalisation an error. ``split_source``: ``auto`` (the folder's own
    split files, else the shipped official ones), ``folder`` or ``official``. ``split_family``: ``satdino`` (the
    default: the files ``split_source`` picks) or a family of the dataset's catalog spec (``torchgeo``: its published
    train/val/test files, fetched and verified, :func:`_family_splits`).
    """
    root, cat = _locate(spec or DEFAULT_DATASET, data_root)
    in_catalog = cat is not None
    name = cat.name if cat is not None and cat.bundled else root.name
    facts: dict[str, str] = {}
    norm = normalization if normalization is not None else (cat.norm if cat is not None else None)
    if normalization is not None:
        facts["normalization"] = "given"
    native = native_size or (cat.native_size if cat is not None else None)
    if native_size:
        facts["native_size"] = "given"
    if split_source not in ("auto", "folder", "official"):
        raise DataError(f"split_source must be auto, folder or official, got {split_source!r}")
    if split_family != DEFAULT_FAMILY:
        if split_source != "auto":
            raise DataError(f"split_source {split_source!r} chooses among SatDINO's split files; it does not apply to "
                            f"split family {split_family!r}")
        fam_splits, files = _family_splits(root, cat, split_family, progress=progress)
        ds_spec = cat  # a family needs a catalog dataset (checked above)
        assert ds_spec is not None
        ds = SceneDataset(name=name, root=root, spec=ds_spec, native_size=native, normalization=norm,
                          splits=fam_splits, split_source=split_family, in_catalog=True, facts_source=facts,
                          split_family=split_family, eval_split=ds_spec.split_families[split_family].report,
                          family_files=files)
        return ds
    official_dir = cat.official_split_dir if cat is not None else None
    splits: dict[str, SplitFile] = {}
    used_source = set()
    for split in ("train", "val"):
        own = root / f"{split}.txt"
        official_path = official_dir / f"{split}.txt" if official_dir is not None else None
        official = _read_split(official_path) if official_path is not None and split_file_present(official_path) else None
        if split_source == "official" or (split_source == "auto" and not split_file_present(own)):
            if official is None:
                raise DataError(f"dataset folder {root} has no {split}.txt and satbench ships no official split for {name!r}")
            sf, src = official, "official"
            sf.official_match = "exact"
        else:
            if not split_file_present(own):
                raise DataError(f"dataset folder {root} has no {split}.txt")
            sf, src = _read_split(own), "folder"
            sf.official_match = _official_match(sf, official)
        splits[split] = sf
        used_source.add(src)
    ds_spec = cat if cat is not None else spec_for_folder(root, native_size=native, normalization=norm)
    ds = SceneDataset(name=name, root=root, spec=ds_spec, native_size=native, normalization=norm, splits=splits,
                      split_source="+".join(sorted(used_source)), in_catalog=in_catalog, facts_source=facts)
    if native is None and require_stats:
        raise DataError(f"dataset folder {root}: {name!r} is not in the catalog; pass --native-size")
    if norm is None and require_stats:
        raise DataError(f"dataset folder {root}: {name!r} is not a known dataset; pass --normalization (a preset, "
                        f"mean=..;std=.. or compute)")
    return ds


def _family_splits(root: Path, cat: Optional[DatasetSpec], family: str, *,
                   progress: bool = False) -> tuple[dict[str, SplitFile], dict[str, Any]]:
    """The split files of published family ``family`` for the dataset folder ``root``: fetched and verified
    (:func:`satbench.data.split_families.fetch_family_files`), read, and each line mapped to ``./<class>/<file>`` with
    the folder's image extension; and what the record says about them."""
    from satbench.data.catalog import list_datasets
    from satbench.data.split_families import fetch_family_files, folder_extension, map_entry, named_extensions

    having = [s.name for s in list_datasets("scene") if family in s.split_families]
    if cat is not None and cat.subset_of and family in get_dataset_spec(cat.subset_of).split_families:
        raise DataError(f"--split {family}: {cat.name} is a subset of {cat.subset_of}, and the {family} split files "
                        f"name every image of {cat.subset_of}; pass the full {cat.subset_of} folder (--dataset "
                        f"DIR/{cat.subset_of})")
    if cat is None or family not in cat.split_families:
        what = f"dataset {cat.name}" if cat is not None else f"{root} (a folder that is not a catalog dataset)"
        raise DataError(f"--split {family}: {what} has no published {family} split; datasets with one: "
                        f"{', '.join(having) or 'none'} (a folder named after one of them)")
    fam = cat.split_families[family]
    extension = folder_extension(root / "images")  # before any download: a folder that cannot take a split fails
    fetched = fetch_family_files(cat.name, family, fam, progress=progress)
    splits: dict[str, SplitFile] = {}
    files: dict[str, Any] = {}
    for split, res in fetched.items():
        sf = _read_split(res.path)
        if sf.sha256 != res.digests.sha256:  # the bytes read are the bytes verified
            raise DataError(f"split file {res.path} changed after its checksum was verified; not used")
        named = named_extensions([e for _, e in sf.lines])
        sf.lines = [(n, map_entry(fam, e, extension, f"{res.path}:{n}")) for n, e in sf.lines]
        sf.official_match = "exact" if named == [extension] else "modulo-extension"
        splits[split] = sf
        rf = fam.files[split]
        files[split] = {"filename": rf.filename, "url": rf.url, "md5": res.digests.md5, "sha256": res.digests.sha256,
                        "how": res.how, "revision": res.revision, "lines": len(sf.lines),
                        "named_extensions": named}
    files = {"family": family, "title": fam.title, "source": fam.source, "report": fam.report,
             "entry": fam.entry, "entry_note": fam.entry_note, "extension_used": extension, "files": files}
    return {s: splits[s] for s in ("train", "val", "test") if s in splits}, files


def compute_normalization(dataset: SceneDataset, split: str = "train", progress: bool = True) -> Normalization:
    """Per-dataset statistics the way SatDINO's tables appear to be made (spec 2.5, [INF]): the mean over images of each
    image's channel means, and the mean over images of each image's channel (population) stds, in [0, 1] at native
    resolution, over ``split``. Returned as ``Normalization("computed:<name>:<split>", ...)``; record it."""
    import numpy as np
    from tqdm.auto import tqdm

    from satbench.data.images import read_rgb

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
