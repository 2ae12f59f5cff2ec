"""A published split family's files: fetched and verified (checksum first), their lines mapped to a folder's entries.

``--split torchgeo`` (:mod:`satbench.data.split_family_spec`) opens a scene dataset on TorchGeo's train/val/test files
instead of SatDINO's train/val. Each file is a :class:`~satbench.data.download_spec.RemoteFile` of the catalog:
:func:`fetch_family_files` gets it through :func:`satbench.io.download.fetch` (a copy put by hand in
:func:`family_folder` is verified and used; a Hugging Face URL goes through ``huggingface_hub`` and its cache; the
md5 is checked before a line is read, and a file that does not match is never used). :func:`map_entry` turns one
published line (``AnnualCrop_1.tif``) into the satbench entry ``./AnnualCrop/AnnualCrop_1.jpg``: the ``class`` group
of the family's ``entry`` expression names the folder, the file keeps its stem, and its extension is the one
extension of the dataset folder's images (:func:`folder_extension`), recorded next to the ones the file names.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Optional

from satbench.errors import DataError
from satbench.data.images import IMAGE_EXTENSIONS
from satbench.data.split_family_spec import SplitFamilySpec
from satbench.io.download import FetchResult, downloads_dir, fetch


def family_folder(dataset: str, family: str) -> Path:
    """Where a family's split files are looked for first and plain downloads go:
    ``$SATBENCH_HOME/downloads/splits/<family>/<dataset>/``."""
    return downloads_dir() / "splits" / family / dataset


def fetch_family_files(dataset: str, family: str, spec: SplitFamilySpec, *, progress: bool = False,
                       log: Callable[[str], None] = print, folder: Optional[Path] = None,
                       client: Any = None) -> dict[str, FetchResult]:
    """Every split file of ``spec``, each verified against its published checksum before it is read.

    Raises :class:`~satbench.io.download.DownloadError` (one line naming the file, the URL and where a copy may be
    put by hand) when a file cannot be obtained or its checksum does not match."""
    where = folder or family_folder(dataset, family)
    return {split: fetch(rf, where, progress=progress, log=log, client=client, record_first_use=False)
            for split, rf in spec.files.items()}


def folder_extension(images_dir: Path) -> str:
    """The one image-file extension under ``images_dir/<class>/`` (``.jpg``); an error naming two files when the
    folder mixes extensions, or when it holds no images."""
    seen: dict[str, str] = {}
    if not images_dir.is_dir():
        raise DataError(f"dataset folder {images_dir.parent} has no images/ folder")
    for cls in sorted(os.scandir(images_dir), key=lambda e: e.name):
        if not cls.is_dir() or cls.name.startswith("."):
            continue
        for f in os.scandir(cls.path):
            ext = os.path.splitext(f.name)[1]
            if ext.lower() in IMAGE_EXTENSIONS and ext not in seen:
                seen[ext] = f"{cls.name}/{f.name}"
                if len(seen) > 1:
                    (a, fa), (b, fb) = list(seen.items())[:2]
                    raise DataError(f"{images_dir} mixes image extensions ({fa} is {a}, {fb} is {b}); a published "
                                    f"split names one file per image, so the folder must hold one format")
    if not seen:
        raise DataError(f"{images_dir} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    return next(iter(seen))


def map_entry(spec: SplitFamilySpec, line: str, extension: str, where: str) -> str:
    """The satbench entry ``./<class>/<stem><extension>`` of one published line; ``where`` (``file:line``) names it
    in the error when the line is not of the family's form."""
    name = line.strip()
    m = spec.entry_re.fullmatch(name)
    if m is None or "/" in name or "\\" in name:
        raise DataError(f"{where}: entry {name[:120]!r} is not a file name of the form {spec.entry}")
    stem = PurePosixPath(name).stem
    return f"./{m.group('class')}/{stem}{extension}"


def named_extensions(lines: list[str]) -> list[str]:
    """The extensions the published lines name (sorted, distinct)."""
    return sorted({os.path.splitext(e)[1] for e in lines})


__all__ = ["family_folder", "fetch_family_files", "folder_extension", "map_entry", "named_extensions"]
