"""Hugging Face hub file URLs: ``https://hf.co/[datasets/]<owner>/<repo>/resolve/<revision>/<file>`` -> :class:`HubRef`.
A leaf (no satbench imports), shared by the dataset specs (which check that hub URLs are pinned) and the downloader."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

_HUB_RE = re.compile(r"^https?://(?:hf\.co|huggingface\.co)/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+?)"
                     r"(?:\?.*)?$")



@dataclass(frozen=True)
class HubRef:
    """A file on the Hugging Face hub: ``repo_type`` (model/dataset/space), repository, revision, path."""

    repo_type: str
    repo_id: str
    revision: str
    filename: str


def parse_hub_url(url: str) -> Optional[HubRef]:
    """The hub coordinates of a ``https://hf.co/[datasets/]<owner>/<repo>/resolve/<rev>/<file>`` URL, else None."""
    m = _HUB_RE.match(url)
    if not m:
        return None
    kind = {"datasets": "dataset", "spaces": "space"}.get(m.group(1) or "", "model")
    return HubRef(kind, m.group(2), m.group(3), m.group(4))
