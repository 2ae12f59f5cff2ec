"""The ``download:`` section of a dataset spec: pinned files, checksums, alternative sources, the manual paragraph.

A catalog spec (:mod:`satbench.data.catalog`) says where its dataset's files come from in one ``download:`` block;
:mod:`satbench.data.sources` turns it (plus the spec's ``license``, ``citation`` and ``homepage``) into the
:class:`~satbench.data.sources.DatasetSource` that ``data download`` runs. The section is read with the same strict
loader as the rest of the spec (:func:`satbench.config.settings.load_settings`): an unknown key, a wrong type, a checksum that
is not hexadecimal of the right length, a URL that is not ``https://``, a Hugging Face URL not pinned to a commit or a
file name that is a path is one error line naming the spec file and the key.

Checksums are the published ones (``checksum_source`` says where each came from). A file whose ``url`` is null is
obtained by hand (``manual`` says how); when no checksum is published for it either, satbench computes md5 and
sha256 on first use and records them (trust on first use). A file with a URL must carry its checksum.
Sizes are informational (progress bar, disk-space hint), never a check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

from satbench.errors import CatalogError
from satbench.io.hub_url import parse_hub_url
from satbench.config.settings import ge


_MD5 = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


def _plain_name(name: str) -> bool:
    """A file or folder name without any path in it."""
    return bool(name) and name not in (".", "..") and not any(c in name for c in "/\\\0")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where it lives and how to recognise it.

    ``url`` is a plain HTTPS URL or a Hugging Face ``resolve`` URL pinned to a commit
    (``https://hf.co/datasets/<repo>/resolve/<commit>/<file>``), which is fetched through ``huggingface_hub``.
    ``url`` is None for files that must be obtained by hand.
    """

    filename: str
    url: Optional[str] = None
    md5: Optional[str] = None
    sha256: Optional[str] = None
    size: Optional[int] = field(default=None, metadata=ge(0))
    checksum_source: str = ""

    def check(self, where: str) -> None:
        """The rules a spec's file entry must meet (called by the strict loader; ``where`` names file and key)."""

        if not _plain_name(self.filename):
            raise CatalogError(f"{where}.filename must be a plain file name (no folders), got {self.filename!r}")
        if self.md5 is not None and not _MD5.fullmatch(self.md5):
            raise CatalogError(f"{where}.md5 must be 32 lower-case hexadecimal digits, got {self.md5!r}")
        if self.sha256 is not None and not _SHA256.fullmatch(self.sha256):
            raise CatalogError(f"{where}.sha256 must be 64 lower-case hexadecimal digits, got {self.sha256!r}")
        if self.url is None:
            return
        if not self.url.startswith("https://"):
            raise CatalogError(f"{where}.url must be an https:// URL, got {self.url!r}")
        hub = parse_hub_url(self.url)
        if hub is not None and not _COMMIT.fullmatch(hub.revision):
            raise CatalogError(f"{where}.url must pin a Hugging Face commit (resolve/<40 hex digits>/...), "
                               f"got revision {hub.revision!r}")
        if self.md5 is None and self.sha256 is None:
            raise CatalogError(f"{where}: a file with a url needs its published md5 or sha256")


@dataclass(frozen=True)
class DownloadSpec:
    """A spec's ``download:`` section (see the module docstring).

    ``files`` are the primary source's files (empty: satbench downloads nothing, ``manual`` says how to get the data);
    ``alternatives`` are other pinned sources of the same data (``data download NAME --source KEY``);
    ``public_domain`` false means the licence is shown and must be accepted before the first download;
    ``folder`` is the prepared dataset's folder under the data root when it differs from the dataset's name.
    """

    title: str = ""
    public_domain: bool = False
    files: tuple[RemoteFile, ...] = ()
    alternatives: dict[str, tuple[RemoteFile, ...]] = field(default_factory=dict)
    manual: str = ""
    folder: str = ""

    def check(self, where: str) -> None:

        if not self.files and not self.manual:
            raise CatalogError(f"{where}: give files (the dataset's archives) or manual (how to get it by hand)")
        if any(f.url is None for f in self.files) and not self.manual:
            raise CatalogError(f"{where}.manual: a file without a url needs a manual paragraph saying where to get it")
        names = [f.filename for f in self.files]
        if len(set(names)) != len(names):
            raise CatalogError(f"{where}.files names a file twice: {', '.join(names)}")
        for key, files in self.alternatives.items():
            if key in ("", "default") or not _plain_name(key):
                raise CatalogError(f"{where}.alternatives: {key!r} is not a usable source name")
            if not files or any(f.url is None for f in files):
                raise CatalogError(f"{where}.alternatives.{key}: an alternative source lists files, each with a url")
        if self.folder and not _plain_name(self.folder):
            raise CatalogError(f"{where}.folder must be a plain folder name, got {self.folder!r}")
