"""The Hugging Face cache is read, never trusted: a snapshot entry must resolve inside the cache.

In the hub's layout ``snapshots/<commit>/<file>`` is a symlink to ``../../blobs/<hash>``. A link that points anywhere
else (``/etc/passwd``, another user's files) is refused, naming the link, instead of being followed and read.
"""

from __future__ import annotations

import os
from pathlib import Path

from satbench.errors import DataError


class HubCacheError(DataError):
    """A hub-cache entry that leads outside the hub cache."""


def check_inside_cache(entry: str | os.PathLike, cache: str | os.PathLike) -> Path:
    """``entry`` (a file in the hub cache) when it and every link it follows stay inside ``cache``; else one line
    naming the link and where it points."""
    entry, root = Path(entry), Path(os.path.realpath(cache))
    target = Path(os.path.realpath(entry))
    if target != root and root not in target.parents:
        link = entry
        for p in [entry, *entry.parents]:  # the first component that is a link names the culprit
            if p.is_symlink():
                link = p
                break
        raise HubCacheError(f"hub cache entry {link} is a symlink to {os.readlink(link) if link.is_symlink() else target}, "
                            f"outside the hub cache {root}; refused (delete the entry and download it again)")
    return entry
