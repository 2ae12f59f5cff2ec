"""Where each benchmark dataset comes from, read from the dataset catalog: pinned URLs, checksums, licences, manual steps.

The facts live in each catalog spec (``satbench/data/catalog/<name>.yaml`` and the folders in ``$SATBENCH_DATASETS``):
its ``download:`` section (:mod:`satbench.data.download_spec`: files with URL, md5/sha256, size and where the checksum
comes from, alternative sources, the manual paragraph, whether the data are public domain) and its ``license``,
``citation`` and ``homepage``. This module only turns a spec into the :class:`DatasetSource` that
:mod:`satbench.io.download` (fetch and verify), :mod:`satbench.io.archives` (safe unpacking) and
:mod:`satbench.data.install` (``data prepare`` and the check) use; adding a downloadable dataset is adding its spec.

Checksums were taken from the code of the libraries that publish these mirrors and checked against a second
source where one exists; ``checksum_source`` says where each came from. Where no published checksum is known
the field is ``None``: satbench then computes md5 and sha256 on the first download and records them in
``$SATBENCH_HOME/downloads/checksums.json`` (trust on first use), and says so; it never invents one.
Sizes are informational (progress bar, disk-space hint), never a check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from satbench.errors import UnknownNameError, close_matches
from satbench.data.catalog import DatasetSpec, find_dataset_spec, list_datasets
from satbench.data.download_spec import DownloadSpec, RemoteFile

__all__ = ["DatasetSource", "RemoteFile", "DownloadSpec", "source_of", "list_sources", "get_source", "public_names"]


@dataclass(frozen=True)
class DatasetSource:
    """How to obtain one dataset.

    ``kind`` is ``scene`` (archives unpacked, then ``data prepare`` links the images) or ``segmentation``
    (mmseg's converter reads the zip files itself; satbench only inspects them for unsafe members).
    ``files`` with ``url`` None mean a manual download: ``manual`` says where to get them.
    ``alternatives`` are other pinned sources of the same data (``data download NAME --source KEY``).
    """

    name: str
    title: str
    kind: str
    files: tuple[RemoteFile, ...]
    licence: str
    public_domain: bool
    citation: str
    homepage: str
    manual: str = ""
    alternatives: dict[str, tuple[RemoteFile, ...]] = field(default_factory=dict)
    folder: str = ""  # the prepared dataset's folder under the data root, when it differs from ``name``

    @property
    def target(self) -> str:
        """Folder name of the prepared dataset under the data root (segmentation: mmseg's folder name)."""
        return self.folder or self.name

    @property
    def downloadable(self) -> bool:
        """True when every file has a URL satbench can fetch."""
        return bool(self.files) and all(f.url for f in self.files)

    def files_for(self, source: Optional[str] = None) -> tuple[RemoteFile, ...]:
        """The files of the primary source, or of alternative ``source``."""
        if source in (None, "", "default"):
            return self.files
        if source not in self.alternatives:
            known = ", ".join(["default", *self.alternatives]) or "default"
            raise UnknownNameError(f"dataset {self.name} has no source {source!r}; known: {known}")
        return self.alternatives[source]


def source_of(spec: DatasetSpec) -> Optional[DatasetSource]:
    """The download source a catalog spec describes, or None when its ``download:`` section lists no files."""
    dl = spec.download
    if dl is None or not dl.files:
        return None
    return DatasetSource(name=spec.name, title=dl.title or spec.label, kind=spec.kind, files=dl.files,
                         licence=spec.license, public_domain=dl.public_domain, citation=spec.citation,
                         homepage=spec.homepage, manual=dl.manual, alternatives=dict(dl.alternatives),
                         folder=dl.folder)


def list_sources() -> dict[str, DatasetSource]:
    """Every catalog dataset with download files, by name (catalog order)."""
    out = {}
    for spec in list_datasets():
        src = source_of(spec)
        if src is not None:
            out[spec.name] = src
    return out


def __getattr__(name: str) -> dict[str, DatasetSource]:
    """``SOURCES``: :func:`list_sources` read at access time (so ``$SATBENCH_DATASETS`` specs are included)."""
    if name == "SOURCES":
        return list_sources()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_source(name: str) -> DatasetSource:
    """The source of dataset ``name`` (catalog aliases accepted); unknown names list close matches."""
    spec = find_dataset_spec(name)
    src = source_of(spec) if spec is not None else None
    if src is None:
        if spec is not None and spec.download is not None and spec.download.manual:
            raise UnknownNameError(f"satbench downloads nothing for dataset {spec.name}: {spec.download.manual}")
        known = sorted(list_sources())
        raise UnknownNameError(f"no download source for dataset {name!r}{close_matches(name, known)}; "
                               f"known: {', '.join(known)}")
    return src


def public_names() -> list[str]:
    """Datasets satbench can download by itself (every file has a pinned URL)."""
    return sorted(n for n, s in list_sources().items() if s.downloadable)
