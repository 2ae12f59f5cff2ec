"""Weights: find a file (path, local cache, Hugging Face hub), hash it, load it safely, load it strictly.

The one loader for every model. Loading is fail-closed: missing, unexpected or mis-shaped keys are an
error that lists them; only the ``module.`` and ``backbone.`` prefixes are forgiven (by the family's
``state_dict_from_checkpoint``). ``torch.load`` always runs with ``weights_only=True`` and an explicit
allow-list of the non-tensor types the official checkpoints carry; anything else is refused unless the
caller passes ``trust_checkpoint=True`` (CLI ``--trust-checkpoint``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor, nn

from satbench.models.backbones import FAMILIES
from satbench.errors import SatbenchError, WeightsError
from satbench.io.hashing import sha256_file
from satbench.models.cards import ModelCard
from satbench.models.checkpoints import fmt_keys as _fmt_keys
from satbench.models.checkpoints import read_checkpoint as _read_checkpoint
from satbench.models.checkpoints import state_dict_problems, tensors_sha256
from satbench.io.network import download_blocker, hub_endpoint, is_offline  # noqa: F401 (is_offline re-exported)
from satbench.models.weight_paths import cached_weight_path, weights_cache_dir  # noqa: F401 (re-exported)
from satbench.models.weight_paths import weight_entry as _weight_entry

CHECKPOINT_SUFFIXES = (".pth", ".pt", ".pth.tar", ".ckpt", ".bin", ".safetensors")


@dataclass
class WeightsInfo:
    """Provenance of the weights a model was loaded with (recorded in every result)."""

    source: str  # "random", "file", "cache", "hub"
    path: Optional[str] = None
    #: the weight file's sha256 (what the card pins)
    sha256: Optional[str] = None
    kind: str = "pretrain"
    seed: Optional[int] = None
    extras: dict[str, Any] = field(default_factory=dict)
    #: How many checkpoint tensors were cast to the model's dtype, per cast (e.g. ``{"float16->float32": 151}``);
    #: empty when every tensor already had the model's dtype (then nothing is recorded, as before).
    dtype_casts: dict[str, int] = field(default_factory=dict)
    hub: dict[str, Any] = field(default_factory=dict)  # hf: weights: hf_repo, hf_file, revision (commit), pinned
    unpinned: bool = False  # loaded despite a sha256 that differs from the card's (--allow-unpinned)
    #: the weights' identity whatever file format they came in: :func:`~satbench.models.checkpoints.tensors_sha256`
    #: of the loaded state dict (and linear head); the leaderboard and the suite group runs by it
    tensors_sha256: Optional[str] = None

    def as_dict(self) -> dict[str, Any]:
        d = {"source": self.source, "path": self.path, "sha256": self.sha256, "kind": self.kind, "seed": self.seed}
        if self.tensors_sha256:
            d["tensors_sha256"] = self.tensors_sha256
        if self.dtype_casts:
            d["dtype_casts"] = dict(self.dtype_casts)
        d.update(self.hub)  # absent unless the weights came from --weights hf:...
        if self.unpinned:
            d["unpinned"] = True
        return d

    @property
    def tag(self) -> str:
        """Short identifier: the sha256 prefix, or ``random-seed<N>``."""
        return f"random-seed{self.seed}" if self.source == "random" else (self.sha256 or "")[:12]


@dataclass
class LoadedModel:
    """A backbone with its card and the provenance of its weights."""

    model: nn.Module
    card: ModelCard
    weights: WeightsInfo
    linear_head: Optional[dict[str, Tensor]] = None


# ---------------------------------------------------------------------------------------------------
# Finding a weight file
# ---------------------------------------------------------------------------------------------------
def download_weights(card: ModelCard, kind: str = "pretrain") -> Path:
    """Download the card's weight file through ``huggingface_hub`` (or a plain URL) into the cache.

    Downloads switched off (``SATBENCH_OFFLINE`` / ``HF_HUB_OFFLINE``) or a host that does not answer one short
    connection (:func:`satbench.io.network.download_blocker`) are one line at once, the way out first."""
    entry = _weight_entry(card, kind)
    target = cached_weight_path(card, kind)
    hint = f"place the weight file at {target}, or pass --weights PATH (or --weights random)"
    if not (entry.get("hf_repo") or entry.get("url")):
        raise WeightsError(f"weights for {card.name} ({kind}) are not in the cache: {hint}; "
                           f"the card names no hf_repo or url to download from")
    blocked = download_blocker(entry["url"] if not entry.get("hf_repo") else hub_endpoint())
    if blocked:
        raise WeightsError(f"weights for {card.name} ({kind}) are not in the cache: {hint}; {blocked}")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        if entry.get("hf_repo"):
            from huggingface_hub import hf_hub_download

            from huggingface_hub.errors import EntryNotFoundError

            try:
                got = hf_hub_download(repo_id=entry["hf_repo"], filename=entry["filename"],
                                      revision=entry.get("revision"), local_dir=str(target.parent))
            except EntryNotFoundError:
                if target.suffix != ".safetensors":
                    raise
                return _download_sharded(entry, target)
            got = Path(got)
            if got.resolve() != target.resolve():
                os.replace(got, target)
        elif entry.get("url"):
            from satbench.io.atomic import atomic_write
            import urllib.request

            with urllib.request.urlopen(entry["url"], timeout=60) as resp:  # noqa: S310 (card-declared URL)
                atomic_write(target, lambda fh: _copy_stream(resp, fh))
    except WeightsError:
        raise
    except Exception as exc:  # network failures of every kind end here
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"weights for {card.name} ({kind}) are not in the cache: {hint}; the download failed "
                           f"({first[:200]})") from None
    return target


def _download_sharded(entry: dict[str, Any], target: Path) -> Path:
    """The card's ``.safetensors`` file as the repository ships it sharded: ``<file>.index.json`` and its shards
    (:mod:`satbench.models.sharded`) into the cache folder; returns the index."""
    from huggingface_hub import hf_hub_download

    from satbench.models.sharded import fetch_shards

    def one(name: str) -> Path:
        return Path(hf_hub_download(repo_id=entry["hf_repo"], filename=name, revision=entry.get("revision"),
                                    local_dir=str(target.parent)))

    index = one(target.name + ".index.json")
    if index.resolve() != target.with_name(index.name).resolve():
        os.replace(index, target.with_name(index.name))
    index = target.with_name(index.name)
    fetch_shards(index, lambda name: target.parent / Path(one(name)).name)
    return index


def _copy_stream(src: Any, dst: Any) -> None:
    while chunk := src.read(1 << 20):
        dst.write(chunk)


def _find_in_snapshot(folder: Path, card: ModelCard, kind: str) -> Path:
    """Pick the weight file inside a Hugging Face snapshot (or any) directory."""
    from satbench.models.sharded import INDEX_FILE, INDEX_SUFFIX

    entry = card.weights.get(kind, {})
    if entry.get("filename") and (folder / entry["filename"]).is_file():
        return folder / entry["filename"]
    if entry.get("filename") and (folder / (entry["filename"] + ".index.json")).is_file():  # the card's file, sharded
        return folder / (entry["filename"] + ".index.json")
    indexes = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(INDEX_SUFFIX))
    if indexes:  # a sharded snapshot (save_pretrained(max_shard_size=...)): its shards are not separate weight files
        if (folder / INDEX_FILE) in indexes:
            return folder / INDEX_FILE
        if len(indexes) == 1:
            return indexes[0]
        raise WeightsError(f"{folder}: several sharded weights indexes ({', '.join(p.name for p in indexes)}); "
                           f"pass one of them")
    candidates = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(CHECKPOINT_SUFFIXES))
    if kind == "pretrain":
        non_ft = [p for p in candidates if "finetune" not in p.name]
        candidates = non_ft or candidates
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise WeightsError(f"{folder}: no weight file ({', '.join(CHECKPOINT_SUFFIXES)}) in this directory")
    safes = [p for p in candidates if p.suffix == ".safetensors"]
    if len(safes) == 1:
        return safes[0]
    raise WeightsError(f"{folder}: several weight files ({', '.join(p.name for p in candidates)}); pass one of them")


def resolve_weights(card: ModelCard, spec: Optional[str], kind: str = "pretrain", *, download: bool = True) -> tuple[Optional[Path], str]:
    """Turn ``--weights`` into a file path and a source label.

    ``spec`` is None (by model name: local cache, then the hub), ``"random"``, ``hf:OWNER/REPO[@REV][/FILE]``,
    a file or a directory. Returns ``(None, "random")`` for random init.
    """
    if spec == "random":
        return None, "random"
    if spec is not None and spec.startswith("hf:"):  # the hub's standard cache (satbench.models.hub)
        from satbench.models.hub import resolve_hub_weights

        return resolve_hub_weights(card, spec, kind).path, "hub"
    if spec is None:
        path = cached_weight_path(card, kind)
        if path.is_file():
            return path, "cache"
        index = path.with_name(path.name + ".index.json")
        if path.suffix == ".safetensors" and index.is_file():  # the card's file, downloaded sharded
            return index, "cache"
        if not download:
            raise WeightsError(f"weights for {card.name} not found at {path}")
        return download_weights(card, kind), "hub"
    path = Path(spec).expanduser()
    if path.is_dir():
        return _find_in_snapshot(path, card, kind), "file"
    if not path.exists():
        raise WeightsError(f"weight file {path} does not exist (expected a .pth/.safetensors file, a "
                           f"model.safetensors.index.json, a snapshot folder or 'random')")
    if not path.is_file():
        raise WeightsError(f"{path} is not a regular file")
    return path, "file"


# ---------------------------------------------------------------------------------------------------
# Reading a checkpoint safely
# ---------------------------------------------------------------------------------------------------
def read_checkpoint(path: str | os.PathLike, *, trust_checkpoint: bool = False) -> Any:
    """Read a ``.pth``/``.safetensors`` weight file without executing code hidden in it
    (:func:`satbench.models.checkpoints.read_checkpoint`, the one safe reader)."""
    return _read_checkpoint(path, trust_checkpoint=trust_checkpoint)


# ---------------------------------------------------------------------------------------------------
# Strict loading
# ---------------------------------------------------------------------------------------------------
def describe_vit_state(sd: dict[str, Tensor]) -> str:
    """A short architecture description of a ViT state dict (embed dim, patch, depth)."""
    w = sd.get("patch_embed.proj.weight")
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    if w is None or w.ndim != 4:
        return f"an unknown architecture ({len(sd)} tensors)"
    return f"a ViT with embed_dim {w.shape[0]}, patch {w.shape[-1]}, depth {depth}"


#: Checkpoint dtypes accepted for a floating-point parameter: cast to the parameter's dtype on load (and recorded
#: in ``WeightsInfo.dtype_casts`` when they differ). Everything else (integer, bool, complex, float8 and other
#: exotic floats) cannot represent the parameter faithfully and is refused, naming the key and its dtype.
LOADABLE_FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def check_dtypes(sd: dict[str, Tensor], own: dict[str, Tensor], *, where: str) -> dict[str, int]:
    """Refuse checkpoint tensors whose dtype cannot hold the model's parameter; return the casts loading will do.

    A floating-point model tensor takes float32 / float64 / float16 / bfloat16 (cast to its dtype, counted as
    ``"<from>-><to>"``); a non-floating model tensor (an integer buffer) needs exactly its own dtype.
    """
    bad: list[str] = []
    casts: dict[str, int] = {}
    for k in sorted(set(sd) & set(own)):
        v, target = sd[k], own[k].dtype
        if not isinstance(v, Tensor):
            continue  # reported as mis-shaped by the caller
        ok = v.dtype in LOADABLE_FLOAT_DTYPES if target.is_floating_point else v.dtype == target
        if not ok:
            bad.append(f"{k} ({_dtype_name(v.dtype)})")
        elif v.dtype != target:
            name = f"{_dtype_name(v.dtype)}->{_dtype_name(target)}"
            casts[name] = casts.get(name, 0) + 1
    if bad:
        raise WeightsError(f"{where}: tensors of a dtype that cannot hold the model's float parameters: {_fmt_keys(bad)} "
                           f"(expected float32, float64, float16 or bfloat16)")
    return casts


def load_state_dict_strict(model: nn.Module, sd: dict[str, Tensor], *, where: str, card: ModelCard) -> dict[str, int]:
    """Load ``sd`` into ``model``; any missing, unexpected or mis-shaped key, or a tensor of a dtype that cannot hold
    the parameter (integer, bool, complex, float8), is a :class:`WeightsError`. Returns the dtype casts done
    (``{"float16->float32": n}``; empty when none), for the record."""
    own = model.state_dict()
    w = sd.get("patch_embed.proj.weight")
    own_w = own.get("patch_embed.proj.weight")
    if isinstance(w, Tensor) and own_w is not None and w.shape != own_w.shape:
        raise WeightsError(
            f"{where}: checkpoint is {describe_vit_state(sd)}, but model {card.name} is "
            f"{describe_vit_state(own)} (wrong architecture or patch size)"
        )
    problems = state_dict_problems(own, sd)
    if problems:
        from satbench.models.checkpoints import nesting_hint

        raise WeightsError(f"{where}: does not fit {card.name}: " + "; ".join(problems) + nesting_hint(sd, own))
    casts = check_dtypes(sd, own, where=where)
    nonfinite = [k for k, v in sd.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if nonfinite:
        raise WeightsError(f"{where}: non-finite values (NaN/inf) in {_fmt_keys(nonfinite)}")
    model.load_state_dict(sd, strict=True)
    return casts


def card_for_built(card: ModelCard, model: Any) -> ModelCard:
    """``card`` with the feature width and pool of the built ``model`` when a build option changed them (``pool
    cls+avg`` doubles the width)."""
    import dataclasses

    dim, pool = getattr(model, "feature_dim", None), getattr(model, "feature_pool", getattr(model, "pool", None))
    changes: dict[str, Any] = {}
    if isinstance(dim, int) and dim != card.feature_dim:
        changes["feature_dim"] = dim
    if isinstance(pool, str) and pool != card.feature:
        changes["feature"] = pool
    return dataclasses.replace(card, **changes) if changes else card


def load_model(
    card: ModelCard,
    weights: Optional[str] = None,
    *,
    kind: str = "pretrain",
    seed: int = 0,
    trust_checkpoint: bool = False,
    verify_sha256: bool = True,
    allow_unpinned: bool = False,
    **build_options: Any,
) -> LoadedModel:
    """Build ``card``'s backbone and load its weights strictly.

    ``weights``: None (by model name: cache, then hub), ``"random"`` (seeded init), ``hf:OWNER/REPO[@REV][/FILE]``
    (hub cache; see :mod:`satbench.models.hub`), a file or a folder. A pinned file whose sha256 differs from the card's
    is refused unless ``allow_unpinned`` (then recorded as ``unpinned``).
    """
    family = FAMILIES.get(card.family)
    if family is None:
        raise SatbenchError(f"model card {card.name}: unknown family {card.family!r} (known: {', '.join(FAMILIES)})")
    weights = default_weights_spec(card, weights, kind)
    hub = None
    if isinstance(weights, str) and weights.startswith("hf:"):  # hub weights with their commit (satbench.models.hub)
        from satbench.models.hub import resolve_hub_weights

        hub = resolve_hub_weights(card, weights, kind)
        path, source = hub.path, "hub"
    else:
        path, source = resolve_weights(card, weights, kind)
    options = {**card.options, **build_options}
    if path is None:
        torch.manual_seed(seed)
        model = family.build(card, **options)
        model.eval()
        return LoadedModel(model, card_for_built(card, model), WeightsInfo(source="random", kind="random", seed=seed))
    model = family.build(card, **options)  # first: a model that cannot be built fails before its weights are read
    digest = sha256_file(path)
    expected = card.weights.get(kind, {}).get("sha256")
    if hub is not None:
        expected = hub.pinned_sha256  # only the card's own repository and file are pinned
    unpinned = _check_pin(path, digest, expected if source in ("cache", "hub") and verify_sha256 else None,
                          card, kind, allow_unpinned)
    obj = read_checkpoint(path, trust_checkpoint=trust_checkpoint)
    obj, prefix = strip_card_key_prefix(obj, card, kind)
    sd, extras = family.state_dict_from_checkpoint(obj, card)
    if prefix:
        extras["key_prefix"] = prefix
    casts = load_state_dict_strict(model, sd, where=str(path), card=card)
    model.eval()
    head = extras.get("linear_head")
    if head is not None:
        for name, n in _check_linear_head(head, card, str(path)).items():
            casts[name] = casts.get(name, 0) + n
    info = WeightsInfo(source=source, path=str(path), sha256=digest, kind=kind, extras={
        k: v for k, v in extras.items() if k != "linear_head"}, dtype_casts=casts,
        tensors_sha256=loaded_tensors_sha256(model, head))
    if hub is not None:
        info.hub = hub.record()
    info.unpinned = unpinned
    return LoadedModel(model, card_for_built(card, model), info, linear_head=head)


def default_weights_spec(card: ModelCard, weights: Optional[str], kind: str = "pretrain") -> Optional[str]:
    """``weights``, or when it is None the family's own default (``Family.default_weights``: a snapshot folder or
    ``hf:...`` for ``hf-transformers``; None keeps the card's weight entry through the satbench cache)."""
    family = FAMILIES.get(card.family)
    if weights is not None or family is None or family.default_weights is None:
        return weights
    return family.default_weights(card, kind)


def loaded_tensors_sha256(model: nn.Module, head: Optional[dict[str, Tensor]] = None) -> str:
    """:func:`~satbench.models.checkpoints.tensors_sha256` of what a loaded model computes with: its state dict (as
    loaded, in the model's dtype) and, for a fine-tuned checkpoint, its linear head (keys ``linear_head.*``). Hashed
    once at load from the tensors already in memory."""
    sd: dict[str, Tensor] = dict(model.state_dict())
    for k, v in (head or {}).items():
        sd[f"linear_head.{k}"] = v
    return tensors_sha256(sd)


def _check_linear_head(head: dict[str, Tensor], card: ModelCard, where: str) -> dict[str, int]:
    """Keys, dtypes, finiteness and shapes of a released ``linear_head``; returns its dtype casts to float32."""
    keys = sorted(head)
    if keys != ["linear.bias", "linear.weight"]:
        raise WeightsError(f"{where}: linear_head must hold linear.weight and linear.bias (module. prefix allowed), got {_fmt_keys(keys)}")
    if not all(isinstance(v, Tensor) for v in head.values()):
        raise WeightsError(f"{where}: linear_head values must be tensors")
    bad = [f"linear_head.{k} ({_dtype_name(v.dtype)})" for k, v in sorted(head.items()) if v.dtype not in LOADABLE_FLOAT_DTYPES]
    if bad:
        raise WeightsError(f"{where}: tensors of a dtype that cannot hold the model's float parameters: {_fmt_keys(bad)} "
                           f"(expected float32, float64, float16 or bfloat16)")
    nonfinite = [f"linear_head.{k}" for k, v in sorted(head.items()) if not torch.isfinite(v).all()]
    if nonfinite:
        raise WeightsError(f"{where}: non-finite values (NaN/inf) in {_fmt_keys(nonfinite)}")
    w = head["linear.weight"]
    if w.ndim != 2 or w.shape[1] != card.feature_dim or head["linear.bias"].shape != (w.shape[0],):
        raise WeightsError(f"{where}: linear_head weight {tuple(w.shape)} does not fit feature dim {card.feature_dim}")
    casts: dict[str, int] = {}
    for v in head.values():
        if v.dtype != torch.float32:
            name = f"{_dtype_name(v.dtype)}->float32"
            casts[name] = casts.get(name, 0) + 1
    return casts


# ---------------------------------------------------------------------------------------------------
# Pins and key prefixes (hub weights; see satbench.models.hub)
# ---------------------------------------------------------------------------------------------------
def _check_pin(path: Path, digest: str, expected: Optional[str], card: ModelCard, kind: str, allow_unpinned: bool) -> bool:
    """Compare a file's sha256 with the card's pin; returns True when a mismatch was allowed (recorded)."""
    if not expected or digest == expected:
        return False
    if not allow_unpinned:
        raise WeightsError(f"{path}: sha256 {digest} does not match the card's {expected} for {card.name} ({kind}); "
                           f"delete the file and download it again, or pass --allow-unpinned to load it anyway "
                           f"(recorded as unpinned)")
    return True


def strip_card_key_prefix(obj: Any, card: ModelCard, kind: str) -> tuple[Any, Optional[str]]:
    """Strip the card's declared ``key_prefix`` (e.g. ``model.`` of Hugging Face style files) from a flat state dict.

    Only the prefix the card names is removed, and only from keys that carry it (never guessed); keys without
    it stay, so strict loading still names anything that does not belong. Returns ``(obj, prefix or None)``.
    """
    prefix = card.weights.get(kind, {}).get("key_prefix") if isinstance(card.weights, dict) else None
    if not prefix or not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        return obj, None
    if not any(isinstance(k, str) and k.startswith(prefix) for k in obj):
        return obj, None
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in obj.items()}, prefix
