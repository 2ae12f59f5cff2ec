"""The ``split_families:`` section of a dataset spec: published split files other than SatDINO's, pinned.

A scene dataset's default split family is ``satdino``: SatDINO's official ``train.txt`` / ``val.txt`` shipped with
satbench (``satbench/data/splits/<name>/``), or the folder's own files in that layout. A spec may name more families
(``--split <family>``), each a set of published split files downloaded on first use (checksum first, like a dataset
archive, :func:`satbench.io.download.fetch`). ``torchgeo`` is TorchGeo's 60/20/20 train/val/test split of EuroSAT,
UC Merced and RESISC45, pinned to the URLs and md5s of ``torchgeo.datasets.{EuroSAT,UCMerced,RESISC45}``.

Published files name images their own way (TorchGeo: one file name per line, ``AnnualCrop_1.tif``); ``entry`` is the
regular expression a line must match in full, with a ``class`` group naming the class folder. A line becomes the
satbench entry ``./<class>/<file stem><extension of the folder's images>`` (:mod:`satbench.data.split_families`).
The strict loader refuses an unknown key, a family without its ``train`` / ``report`` files, an expression that does
not compile or has no ``class`` group, and every rule of :class:`~satbench.data.download_spec.RemoteFile`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from satbench.errors import CatalogError
from satbench.data.download_spec import RemoteFile

#: The default family (SatDINO's official splits); never declared in a spec.
DEFAULT_FAMILY = "satdino"
_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitFamilySpec:
    """One published split family of a dataset (see the module docstring).

    ``files``: the published file of each split (``train``, ``val``, ``test``); ``report``: the split a kNN run
    reports (the others but ``train`` are held out for what needs a validation split); ``entry``: the expression a
    line must match in full; ``entry_note``: how the published names relate to the dataset's files; ``source``: where
    the URLs and checksums were read.
    """

    title: str
    source: str
    entry: str
    files: dict[str, RemoteFile] = field(default_factory=dict)
    report: str = "test"
    entry_note: str = ""

    def check(self, where: str) -> None:
        unknown = [s for s in self.files if s not in SPLITS]
        if unknown:
            raise CatalogError(f"{where}.files: unknown split {unknown[0]!r}; expected {', '.join(SPLITS)}")
        for split in ("train", self.report):
            if split not in self.files:
                raise CatalogError(f"{where}.files needs a {split} file")
        if self.report == "train":
            raise CatalogError(f"{where}.report must be a split other than train")
        for split, rf in self.files.items():
            if rf.url is None:
                raise CatalogError(f"{where}.files.{split} needs a url (published split files are downloaded)")
        try:
            rx = re.compile(self.entry)
        except re.error as exc:
            raise CatalogError(f"{where}.entry is not a regular expression ({exc})") from None
        if "class" not in rx.groupindex:
            raise CatalogError(f"{where}.entry needs a (?P<class>...) group naming the class folder")

    @property
    def entry_re(self) -> "re.Pattern[str]":
        return re.compile(self.entry)


def check_family_name(name: str, where: str) -> None:
    """A family name is a short lower-case word, and never the default family (which needs no declaration)."""
    if not _NAME.fullmatch(name):
        raise CatalogError(f"{where}: split family name {name!r} must be a short lower-case word")
    if name == DEFAULT_FAMILY:
        raise CatalogError(f"{where}: split family {DEFAULT_FAMILY!r} is the default (the official split files); "
                           f"it is not declared")
