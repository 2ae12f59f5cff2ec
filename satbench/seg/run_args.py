"""The settings of one segmentation run, recorded as data and turned back into its mmengine config without
executing anything from the work dir.

``satbench run --task segmentation`` writes ``satbench_seg_run.json`` (atomically, beside the mmengine
``satbench_seg_config.py`` dump): the arguments it gave :func:`satbench.seg.config.build_config` plus the few
edits the runner makes afterwards (launcher, gloo backend, CPU-distributed norms, bf16, resume). The runner
itself builds its config from the same :class:`SegRunArgs` through :func:`make_config`, so the rebuilt config is
the run's config: ``make_config(read_run_args(json)).pretty_text`` is byte-identical to the ``.py`` dump.

A work dir is untrusted input, so a ``.json`` read back is validated field by field (exact key set, strict
types and ranges), and ``cfg_options`` -- mmengine dotted-key overrides -- may only change *values*: a key or
nested dict key that selects code (``type``, ``constructor``, ``custom_imports``, ``default_scope``,
``init_cfg``, any ``_private_`` key ...) is refused, at run time and when read back. mmengine's registries turn
a ``type`` string into an import (``Registry.get`` falls back to ``get_object_from_string``, e.g.
``type='os.system'``), so a type override would make a recorded run execute code when it is rebuilt.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping, Optional

from satbench.runtime import mmcv_compat

mmcv_compat.install()

from mmengine.config import Config  # noqa: E402

from satbench.errors import ProtocolError  # noqa: E402
from satbench.io.atomic import atomic_write_json  # noqa: E402
from satbench.seg.config import CROPS, SEG_DATASETS, build_config  # noqa: E402
from satbench.seg.untrusted import read_small_file  # noqa: E402
from satbench.io.bounded import read_bytes_or_fail  # noqa: E402

RUN_ARGS_NAME = "satbench_seg_run.json"
SCHEMA = "satbench.seg_run/1"
MAX_JSON_BYTES = 1 << 20
MAX_CARD_BYTES = 1 << 20
MAX_LITERAL_CHARS = 1 << 16

#: Config keys whose values select code (registry types, importers, initialisers that load files) or trust:
#: ``cfg_options`` may not set them, at any depth.
CODE_KEYS = frozenset({
    "type", "constructor", "custom_imports", "default_scope", "init_cfg", "pretrained", "load_from", "resume",
    "trust_checkpoint", "lazy_import",
})
_KEY_SEGMENT = re.compile(r"^(?:[A-Za-z][A-Za-z0-9_]*|[0-9]{1,6})$")
_DICT_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_CARD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,199}$")
_MAX_DEPTH = 8
_MAX_ITEMS = 10000


def check_cfg_options(options: Mapping[str, Any], where: str = "--seg-cfg-options") -> dict[str, Any]:
    """``options`` as a plain dict if every key and value is a data override; one-line error otherwise.

    Keys are dotted paths of identifiers (list positions as numbers); values are None, bool, int, finite float,
    str, list, tuple or dict (identifier keys). No key segment and no nested dict key may be one of
    :data:`CODE_KEYS` or start with ``_`` (mmengine's ``_base_``, ``_delete_``, ``_scope_``).
    """
    if not isinstance(options, Mapping):
        raise ProtocolError(f"{where}: expected KEY=VALUE overrides, got {type(options).__name__}")
    out: dict[str, Any] = {}
    count = [0]
    for key, value in options.items():
        if not isinstance(key, str) or not key:
            raise ProtocolError(f"{where}: key {key!r} is not a dotted config key")
        for seg in key.split("."):
            if not _KEY_SEGMENT.match(seg):
                raise ProtocolError(f"{where} {key}: {seg!r} is not a config key (expected identifiers or list "
                                    f"positions separated by dots; keys starting with '_' are not accepted)")
            if seg in CODE_KEYS:
                raise ProtocolError(f"{where} {key}: {seg!r} selects code or trust, which cfg_options may not "
                                    f"change (only values of the shipped config)")
        _check_value(value, f"{where} {key}", 0, count)
        out[key] = value
    return out


def _check_value(value: Any, where: str, depth: int, count: list[int]) -> None:
    count[0] += 1
    if count[0] > _MAX_ITEMS or depth > _MAX_DEPTH:
        raise ProtocolError(f"{where}: value too large or too deeply nested")
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ProtocolError(f"{where}: {value!r} is not a finite number")
        return
    if isinstance(value, (list, tuple)):
        for v in value:
            _check_value(v, where, depth + 1, count)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str) or not _DICT_KEY.match(k):
                raise ProtocolError(f"{where}: dict key {k!r} is not an identifier (keys starting with '_' are "
                                    f"not accepted)")
            if k in CODE_KEYS:
                raise ProtocolError(f"{where}: dict key {k!r} selects code or trust, which cfg_options may not "
                                    f"change (only values of the shipped config)")
            _check_value(v, where, depth + 1, count)
        return
    raise ProtocolError(f"{where}: a {type(value).__name__} value is not accepted (expected None, bool, int, "
                        f"float, str, list, tuple or dict)")


@dataclass(frozen=True)
class SegRunArgs:
    """Everything that determines a segmentation run's mmengine config (see :func:`make_config`)."""

    model: str
    dataset: str
    crop: int
    weights: Optional[str] = None
    seed: int = 0
    data_root: Optional[str] = None
    out_indices: Optional[tuple[int, ...]] = None
    norm_layers: bool = True
    frozen: bool = False
    layer_decay: Optional[float] = None
    build_options: dict[str, Any] = field(default_factory=dict)
    trust_checkpoint: bool = False
    total_batch: int = 8
    world_size: int = 1
    num_workers: Optional[int] = None
    iters: Optional[int] = None
    work_dir: Optional[str] = None
    cfg_options: tuple[tuple[str, Any], ...] = ()
    launcher: str = "none"
    dist_backend: Optional[str] = None
    cpu_distributed: bool = False
    bf16: bool = False
    resume: bool = False
    load_from: Optional[str] = None
    protocol: str = "upernet-v1"
    protocol_overrides: tuple[tuple[str, Any], ...] = ()

    def validate(self, where: str, options_where: Optional[str] = None) -> "SegRunArgs":
        """Check every field (types, ranges, data-only ``cfg_options``); returns ``self``."""
        _validate(self, where, options_where or f"{where}: cfg_options")
        return self

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``cfg_options`` as ``[key, Python literal]`` pairs, so tuples stay tuples)."""
        d = asdict(self)
        d["out_indices"] = list(self.out_indices) if self.out_indices is not None else None
        d["cfg_options"] = [[k, repr(v)] for k, v in self.cfg_options]
        d["protocol_overrides"] = [[k, repr(v)] for k, v in self.protocol_overrides]
        return {"schema": SCHEMA, "args": d}

    @classmethod
    def from_json(cls, obj: Any, where: str) -> "SegRunArgs":
        """Parse and validate the JSON form; unknown, missing or mistyped fields are one-line errors."""
        if not isinstance(obj, dict) or obj.get("schema") != SCHEMA or not isinstance(obj.get("args"), dict):
            raise ProtocolError(f"{where}: not a satbench segmentation run record (expected "
                                f'{{"schema": "{SCHEMA}", "args": {{...}}}})')
        if set(obj) != {"schema", "args"}:
            raise ProtocolError(f"{where}: unknown top-level keys {sorted(set(obj) - {'schema', 'args'})}")
        args = dict(obj["args"])
        names = [f.name for f in fields(cls)]
        unknown, missing = sorted(set(args) - set(names)), sorted(set(names) - set(args))
        if unknown or missing:
            parts = ([f"unknown keys {unknown}"] if unknown else []) + ([f"missing keys {missing}"] if missing else [])
            raise ProtocolError(f"{where}: " + "; ".join(parts))
        for name in ("cfg_options", "protocol_overrides"):
            opts = args[name]
            if not isinstance(opts, list) or not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                                                     and isinstance(p[1], str) for p in opts):
                raise ProtocolError(f"{where}: {name} must be a list of [key, literal] string pairs")
            parsed = []
            for key, text in opts:
                if len(text) > MAX_LITERAL_CHARS:
                    raise ProtocolError(f"{where}: {name} {key}: value longer than {MAX_LITERAL_CHARS} characters")
                try:
                    parsed.append((key, ast.literal_eval(text)))
                except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                    raise ProtocolError(f"{where}: {name} {key}: {text[:60]!r} is not a Python literal") from None
            args[name] = tuple(parsed)
        if isinstance(args["out_indices"], list):
            args["out_indices"] = tuple(args["out_indices"])
        if isinstance(args["layer_decay"], int) and not isinstance(args["layer_decay"], bool):
            args["layer_decay"] = float(args["layer_decay"])
        return cls(**args).validate(where)


def _int(v: Any, name: str, where: str, lo: int, hi: int, optional: bool = False) -> None:
    if v is None and optional:
        return
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise ProtocolError(f"{where}: {name} must be an integer in [{lo}, {hi}], got {v!r}")


def _bool(v: Any, name: str, where: str) -> None:
    if not isinstance(v, bool):
        raise ProtocolError(f"{where}: {name} must be true or false, got {v!r}")


def _str(v: Any, name: str, where: str, optional: bool = True) -> None:
    if v is None and optional:
        return
    if not isinstance(v, str) or not v or len(v) > 4096 or "\x00" in v:
        raise ProtocolError(f"{where}: {name} must be a non-empty string (at most 4096 characters), got {v!r:.80}")


def _validate(a: SegRunArgs, where: str, options_where: str) -> None:
    _str(a.model, "model", where, optional=False)
    if a.model.endswith((".yaml", ".yml")):
        _check_card_file(a.model, where)
    elif not _CARD_NAME.match(a.model):
        raise ProtocolError(f"{where}: model {a.model!r:.80} is neither a model name nor a card .yaml path")
    if a.dataset not in SEG_DATASETS:
        raise ProtocolError(f"{where}: dataset must be one of {', '.join(SEG_DATASETS)}, got {a.dataset!r:.80}")
    if not isinstance(a.crop, int) or isinstance(a.crop, bool) or a.crop not in CROPS:
        raise ProtocolError(f"{where}: crop must be one of {CROPS}, got {a.crop!r}")
    for name in ("weights", "data_root", "work_dir", "load_from"):
        _str(getattr(a, name), name, where)
    _int(a.seed, "seed", where, 0, 2**63 - 1)
    if a.out_indices is not None:
        if not isinstance(a.out_indices, tuple) or len(a.out_indices) != 4:
            raise ProtocolError(f"{where}: out_indices must be 4 block indices, got {a.out_indices!r:.80}")
        for i in a.out_indices:
            _int(i, "out_indices", where, 0, 1023)
    for name in ("norm_layers", "frozen", "trust_checkpoint", "cpu_distributed", "bf16", "resume"):
        _bool(getattr(a, name), name, where)
    if a.layer_decay is not None and (not isinstance(a.layer_decay, float) or not 0 < a.layer_decay <= 1):
        raise ProtocolError(f"{where}: layer_decay must be a number in (0, 1] or null, got {a.layer_decay!r}")
    if not isinstance(a.build_options, dict):
        raise ProtocolError(f"{where}: build_options must be a dict, got {type(a.build_options).__name__}")
    for k, v in a.build_options.items():
        if not isinstance(k, str) or not _DICT_KEY.match(k) or k in CODE_KEYS:
            raise ProtocolError(f"{where}: build_options key {k!r:.80} is not accepted")
        if not (v is None or isinstance(v, (bool, int, str)) or (isinstance(v, float) and math.isfinite(v))):
            raise ProtocolError(f"{where}: build_options {k} must be a plain value, got {type(v).__name__}")
    _int(a.total_batch, "total_batch", where, 1, 65536)
    _int(a.world_size, "world_size", where, 1, 65536)
    _int(a.num_workers, "num_workers", where, 0, 1024, optional=True)
    _int(a.iters, "iters", where, 1, 10**8, optional=True)
    if not isinstance(a.cfg_options, tuple) or not all(isinstance(p, tuple) and len(p) == 2 for p in a.cfg_options):
        raise ProtocolError(f"{where}: cfg_options must be (key, value) pairs")
    check_cfg_options(dict(a.cfg_options), options_where)
    if not isinstance(a.protocol_overrides, tuple) or not all(isinstance(p, tuple) and len(p) == 2
                                                              for p in a.protocol_overrides):
        raise ProtocolError(f"{where}: protocol_overrides must be (key, value) pairs")
    recipe_of(a)  # the protocol exists, is a segmentation protocol, and its overrides fit its typed settings
    if a.launcher not in ("none", "pytorch"):
        raise ProtocolError(f"{where}: launcher must be 'none' or 'pytorch', got {a.launcher!r:.80}")
    if a.dist_backend not in (None, "gloo"):
        raise ProtocolError(f"{where}: dist_backend must be null or 'gloo', got {a.dist_backend!r:.80}")
    if a.load_from is not None and not a.resume:
        raise ProtocolError(f"{where}: load_from is set without resume")


def _check_card_file(path: str, where: str) -> None:
    """A card path must be a regular file of modest size (never a FIFO the card loader would block on): read through
    io.bounded's one reader, so the check is the read, not a stat that a swapped file could pass."""
    read_bytes_or_fail(path, MAX_CARD_BYTES, lead=f"{where}: model card {path}", error=ProtocolError)


def replace_norm_type(node: Any, old: str, new: str) -> int:
    """Replace ``type=old`` by ``type=new`` in every norm_cfg dict of a (nested) config; returns the count."""
    n = 0
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "norm_cfg" and isinstance(value, dict) and value.get("type") == old:
                value["type"] = new
                n += 1
            else:
                n += replace_norm_type(value, old, new)
    elif isinstance(node, (list, tuple)):
        for value in node:
            n += replace_norm_type(value, old, new)
    return n


def cpu_distributed_edits(cfg: Config) -> int:
    """The config side of CPU ``torchrun`` runs: DDP without ``device_ids``, per-process BN; returns #norms swapped."""
    cfg.model_wrapper_cfg = dict(type="MMDistributedDataParallel", device_ids=None)
    return replace_norm_type(cfg.model, "SyncBN", "BN")


def recipe_of(args: SegRunArgs) -> Any:
    """The run's segmentation protocol (name + overrides) as typed settings (strict; nothing executed)."""
    from satbench.config.seg_settings import SegmentationSettings
    from satbench.config.protocols import load_protocol

    if not isinstance(args.protocol, str) or args.protocol.endswith((".yaml", ".yml")) or "/" in args.protocol:
        raise ProtocolError(f"segmentation run: protocol must be a protocol name, got {args.protocol!r}")
    proto = load_protocol(args.protocol, task="segmentation")
    if args.protocol_overrides:
        proto = proto.with_overrides(**dict(args.protocol_overrides))
    return proto.settings(SegmentationSettings)


def make_config(args: SegRunArgs) -> tuple[Config, Optional[int]]:
    """The run's mmengine config from the shipped templates, and the number of SyncBN -> BN swaps (CPU torchrun)."""
    cfg = build_config(
        args.model, args.dataset, args.crop, weights=args.weights, seed=args.seed, data_root=args.data_root,
        out_indices=args.out_indices, norm_layers=args.norm_layers, frozen=args.frozen, layer_decay=args.layer_decay,
        build_options=dict(args.build_options), trust_checkpoint=args.trust_checkpoint, total_batch=args.total_batch,
        world_size=args.world_size, num_workers=args.num_workers, iters=args.iters, work_dir=args.work_dir,
        cfg_options=dict(args.cfg_options) or None, recipe=recipe_of(args))
    cfg.launcher = args.launcher
    if args.dist_backend is not None:
        cfg.env_cfg.dist_cfg = dict(backend=args.dist_backend)
    replaced = cpu_distributed_edits(cfg) if args.cpu_distributed else None
    if args.bf16:
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.dtype = "bfloat16"
    if args.resume:
        cfg.resume = True
        cfg.load_from = args.load_from
    return cfg, replaced


def write_run_args(args: SegRunArgs, path: str | os.PathLike) -> Path:
    """Write the JSON form atomically."""
    return atomic_write_json(path, args.to_json())


def read_run_args(path: str | os.PathLike) -> SegRunArgs:
    """Read and validate a ``satbench_seg_run.json`` (size-capped, regular file only); nothing is executed."""
    raw = read_small_file(path, MAX_JSON_BYTES, what="the recorded segmentation run", error=ProtocolError)
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"{path}: not readable JSON ({str(exc).splitlines()[0][:120]})") from None
    return SegRunArgs.from_json(obj, str(path))
