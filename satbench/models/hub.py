"""Weights from the Hugging Face hub: ``--weights hf:OWNER/REPO[@REVISION][/FILE]``.

The file is fetched through ``huggingface_hub`` into its standard cache (``$HF_HUB_CACHE``, ``$HF_HOME/hub``
or ``~/.cache/huggingface/hub``) and, offline (``HF_HUB_OFFLINE=1`` / ``SATBENCH_OFFLINE=1``), found there
without any network call. ``FILE`` defaults to the card's weight file name; ``REVISION`` to the card's pinned
revision when the repository is the card's, else ``main``. The resolved commit is recorded.

Pinning: when the spec names the card's own repository and file, the file's sha256 must equal the card's
``sha256`` (when the card knows it); :func:`satbench.models.weights.load_model` enforces that, and
``--allow-unpinned`` overrides it (recorded as ``weights.unpinned: true``). Other repositories are the
user's own checkpoints and, like ``--weights PATH``, carry no pin.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from satbench.errors import WeightsError

PREFIX = "hf:"
_SPEC_RE = re.compile(r"^hf:(?P<repo>[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*)"
                      r"(?:@(?P<rev>[A-Za-z0-9][A-Za-z0-9_.-]*))?(?:/(?P<file>.+))?$")
FORMAT = "hf:OWNER/REPO[@REVISION][/FILE]"


@dataclass(frozen=True)
class HubSpec:
    """A parsed ``hf:`` weights spec (``revision`` / ``filename`` None when not given)."""

    repo_id: str
    revision: Optional[str] = None
    filename: Optional[str] = None


@dataclass
class HubWeights:
    """A hub weight file in the local cache, with what is known about it."""

    path: Path
    repo_id: str
    filename: str
    revision: str  # as requested (branch, tag or commit)
    commit: str  # the commit it resolved to
    official: bool  # the card's own repository and file
    pinned_sha256: Optional[str]  # the card's sha256 for it (official files only), else None

    def record(self) -> dict[str, Any]:
        """What goes into ``record["weights"]`` next to source/path/sha256."""
        return {"hf_repo": self.repo_id, "hf_file": self.filename, "revision": self.commit,
                "revision_requested": self.revision, "pinned": bool(self.pinned_sha256)}


def is_hub_spec(spec: Any) -> bool:
    """True for ``--weights hf:...``."""
    return isinstance(spec, str) and spec.startswith(PREFIX)


def parse_hf_spec(spec: str) -> HubSpec:
    """Parse ``hf:OWNER/REPO[@REVISION][/FILE]``; a malformed spec is a :class:`WeightsError` naming it."""
    m = _SPEC_RE.match(spec)
    if not m:
        raise WeightsError(f"--weights {spec!r}: expected {FORMAT} (e.g. hf:strakajk/satdino-vit_small-16@main)")
    filename = m.group("file")
    if filename is not None:
        parts = filename.split("/")
        if "\\" in filename or any(p in ("", ".", "..") for p in parts):
            raise WeightsError(f"--weights {spec!r}: the file part {filename!r} must be a plain relative path in the "
                               f"repository (no '..', no empty parts)")
    return HubSpec(m.group("repo"), m.group("rev"), filename)


def resolve_hub_weights(card: Any, spec: str, kind: str = "pretrain") -> HubWeights:
    """Download (or find in the hub cache) the file ``spec`` names for ``card``; nothing is loaded yet."""
    from satbench.io.download import DownloadError, HubRef, hub_fetch

    hs = parse_hf_spec(spec)
    entry = card.weights.get(kind, {}) if isinstance(card.weights, dict) else {}
    own_repo = entry.get("hf_repo") == hs.repo_id
    filename = hs.filename or entry.get("filename")
    if not filename:
        raise WeightsError(f"--weights {spec}: name the file ({PREFIX}{hs.repo_id}/FILE): model {card.name} declares "
                           f"no {kind} weight file name")
    revision = hs.revision or (entry.get("revision") if own_repo and entry.get("revision") else None) or "main"
    try:
        path, commit = hub_fetch(HubRef("model", hs.repo_id, revision, filename))
    except DownloadError as exc:
        got = _sharded(hs.repo_id, revision, filename) if filename.endswith(".safetensors") else None
        if got is None:
            raise WeightsError(f"{exc}; fetch it once with network access (or `hf download {hs.repo_id} {filename} "
                               f"--revision {revision}`), or pass --weights PATH") from None
        path, commit = got
        filename = path.name
    official = own_repo and filename == entry.get("filename")
    pinned = (entry.get("sha256") or None) if official else None
    return HubWeights(path=path, repo_id=hs.repo_id, filename=filename, revision=revision, commit=commit,
                      official=official, pinned_sha256=pinned)


def _sharded(repo_id: str, revision: str, filename: str) -> Optional[tuple[Path, str]]:
    """``filename`` sharded: ``<filename>.index.json`` and the shards it names (:mod:`satbench.models.sharded`), all at
    the commit the index came from; None when the repository has no such index (the caller reports the file)."""
    from satbench.io.download import DownloadError, HubRef, hub_fetch
    from satbench.models.sharded import fetch_shards

    try:
        index, commit = hub_fetch(HubRef("model", repo_id, revision, filename + ".index.json"))
    except DownloadError:
        return None

    def one(name: str) -> Path:
        try:
            return hub_fetch(HubRef("model", repo_id, commit, name))[0]
        except DownloadError as exc:
            raise WeightsError(f"{exc} (a shard named by {index}); fetch the snapshot once with network access "
                               f"(`hf download {repo_id} --revision {commit}`)") from None

    fetch_shards(index, one)
    return index, commit
