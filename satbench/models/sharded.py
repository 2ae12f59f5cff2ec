"""Sharded safetensors snapshots: ``model.safetensors.index.json`` + ``model-0000x-of-0000y.safetensors``.

Large repositories (DINOv3 / ViT-L and up) ship their weights in shards that ``save_pretrained(max_shard_size=...)``
writes next to an index whose ``weight_map`` names the shard of every tensor. The index is a file satbench did not
write, so it is read bounded and checked before any shard is opened:

* a JSON object with a ``weight_map`` object of tensor name -> shard file name (``metadata`` optional, an object);
* every shard a plain file name (no folder part, no ``..``, no hidden name, ending ``.safetensors``) of a regular
  file in the index's own folder (a Hugging Face cache snapshot's symlinks to its blobs are followed; the names
  cannot leave the folder);
* every key of the weight map present in its shard, and no shard holding a tensor the map does not name there.

Each problem is one :class:`~satbench.errors.WeightsError` line naming the file. The shards are read with
safetensors (tensors only, never code); the state dict they give is the one a single ``model.safetensors`` of the
same weights gives, so the weights identity (``tensors_sha256``) is the same too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from satbench.errors import WeightsError

#: The index file name transformers writes (``<weights name>.index.json``).
INDEX_FILE = "model.safetensors.index.json"
INDEX_SUFFIX = ".safetensors.index.json"
#: The most bytes read of an index (a ViT-g index is ~100 KiB; the largest LLM indexes stay below 4 MiB).
INDEX_LIMIT = 16 << 20
#: The most shards one index may name.
MAX_SHARDS = 10_000


@dataclass(frozen=True)
class ShardIndex:
    """A checked index: its path, the shard files (sorted) and the tensor -> shard map."""

    path: Path
    shards: tuple[str, ...]
    weight_map: dict[str, str]

    def shard_path(self, name: str) -> Path:
        return self.path.parent / name


def is_index(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a sharded-safetensors index (``*.safetensors.index.json``)."""
    return str(path).endswith(INDEX_SUFFIX)


def _plain_name(name: Any) -> bool:
    return (isinstance(name, str) and name.endswith(".safetensors") and name == os.path.basename(name)
            and "/" not in name and "\\" not in name and not name.startswith(".") and "\x00" not in name)


def parse_index(path: str | os.PathLike) -> ShardIndex:
    """Read and check the index ``path`` (JSON, names; see the module docstring) without looking at the shards."""
    from satbench.io.bounded import read_json_bounded

    path = Path(path)
    data = read_json_bounded(path, what="sharded weights index", limit=INDEX_LIMIT, error=WeightsError)
    if not isinstance(data, dict):
        raise WeightsError(f"sharded weights index {path}: expected a JSON object, got {type(data).__name__}")
    wm = data.get("weight_map")
    if not isinstance(wm, dict) or not wm:
        raise WeightsError(f"sharded weights index {path}: expected a non-empty 'weight_map' object of tensor name "
                           f"-> shard file")
    if "metadata" in data and not isinstance(data["metadata"], dict):
        raise WeightsError(f"sharded weights index {path}: 'metadata' must be an object")
    bad = sorted({repr(v) for v in wm.values() if not _plain_name(v)})
    if bad:
        raise WeightsError(f"sharded weights index {path}: shard names must be plain .safetensors file names in the "
                           f"snapshot folder (no folder part, no '..'), got {', '.join(bad[:4])}")
    shards = tuple(sorted(set(wm.values())))
    if len(shards) > MAX_SHARDS:
        raise WeightsError(f"sharded weights index {path}: {len(shards)} shards (at most {MAX_SHARDS})")
    return ShardIndex(path, shards, dict(wm))


def read_index(path: str | os.PathLike) -> ShardIndex:
    """:func:`parse_index`, and every shard checked to exist as a regular file in the index's folder (not opened)."""
    index = parse_index(path)
    path = index.path
    for name in index.shards:
        p = path.parent / name
        if not p.exists():
            raise WeightsError(f"sharded weights index {path}: shard {name} does not exist in {path.parent}")
        if not p.is_file():
            raise WeightsError(f"sharded weights index {path}: shard {p} is not a regular file")
    return index


def fetch_shards(index_path: Path, fetch: Callable[[str], Path]) -> ShardIndex:
    """Fetch every shard the index at ``index_path`` names with ``fetch(name) -> path`` (a hub download at the index's
    commit); each must land next to the index. Returns the checked index."""
    index = parse_index(index_path)
    for name in index.shards:
        got = Path(fetch(name))
        if got.parent != index_path.parent or got.name != name:
            raise WeightsError(f"sharded weights index {index_path}: shard {name} was fetched to {got}, not next to "
                               f"the index")
    return read_index(index_path)


def fmt_keys(keys: list[str], n: int = 8) -> str:
    """At most ``n`` keys, then how many more (as :func:`satbench.models.checkpoints.fmt_keys`; a leaf here, which
    that module imports)."""
    return ", ".join(keys[:n]) + (f" ... (+{len(keys) - n} more)" if len(keys) > n else "")


def read_sharded(path: str | os.PathLike) -> dict[str, Any]:
    """The state dict of a sharded snapshot: every shard of the index ``path`` read with safetensors, its keys checked
    against the weight map both ways."""
    from safetensors import SafetensorError, safe_open

    index = read_index(path)
    out: dict[str, Any] = {}
    for name in index.shards:
        shard = index.shard_path(name)
        if shard.stat().st_size == 0:
            raise WeightsError(f"{shard}: the shard is empty (0 bytes; named by {index.path.name})")
        expected = {k for k, v in index.weight_map.items() if v == name}
        try:
            with safe_open(str(shard), framework="pt", device="cpu") as fh:
                keys = set(fh.keys())
                missing = sorted(expected - keys)
                if missing:
                    raise WeightsError(f"{shard}: tensors the index {index.path.name} maps to this shard are not in "
                                       f"it: {fmt_keys(missing)}")
                extra = sorted(keys - expected)
                if extra:
                    raise WeightsError(f"{shard}: tensors the index {index.path.name} does not map to this shard: "
                                       f"{fmt_keys(extra)}")
                for k in sorted(keys):
                    out[k] = fh.get_tensor(k)
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{shard}: not a readable safetensors shard "
                               f"({(str(exc).splitlines() or [type(exc).__name__])[0][:160]})") from None
    return out


__all__ = ["INDEX_FILE", "ShardIndex", "fetch_shards", "is_index", "parse_index", "read_index", "read_sharded"]
