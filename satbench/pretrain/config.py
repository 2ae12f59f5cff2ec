"""Pretraining configs as protocol files (``tasks/pretrain/*.yaml``) plus ``--set key=value`` overrides.

Every parameter has a declared type (and choices where the spec has them); a config file missing a key,
carrying an unknown one, or an override of the wrong type is a :class:`ProtocolError` naming the key.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Iterable

import yaml

from satbench.errors import ProtocolError
from satbench.config.protocols import Protocol, load_protocol
from satbench.config.yamlio import load_yaml

PRECISIONS = ("fp32", "fp16", "bf16")
GSD_HEAD_MODES = ("frozen-random", "trained")

#: key -> (type(s), choices or None). ``None`` in the types tuple means the value may be null.
SCHEMA: dict[str, tuple[tuple[type | None, ...], tuple[Any, ...] | None]] = {
    "arch": ((str,), ("vit_tiny", "vit_small", "vit_base", "vit_large")),
    "patch_size": ((int,), None),
    "depth": ((int, None), None),
    "out_dim": ((int,), None),
    "head_hidden_dim": ((int,), None),
    "head_bottleneck_dim": ((int,), None),
    "head_nlayers": ((int,), None),
    "norm_last_layer": ((bool,), None),
    "use_bn_in_head": ((bool,), None),
    "momentum_teacher": ((float,), None),
    "warmup_teacher_temp": ((float,), None),
    "teacher_temp": ((float,), None),
    "warmup_teacher_temp_epochs": ((int,), None),
    "student_temp": ((float,), None),
    "center_momentum": ((float,), None),
    "precision": ((str,), PRECISIONS),
    "weight_decay": ((float,), None),
    "weight_decay_end": ((float,), None),
    "clip_grad": ((float,), None),
    "batch_size_per_gpu": ((int,), None),
    "accum_steps": ((int,), None),
    "epochs": ((int,), None),
    "freeze_last_layer": ((int,), None),
    "lr": ((float,), None),
    "warmup_epochs": ((int,), None),
    "min_lr": ((float,), None),
    "drop_path_rate": ((float,), None),
    "global_crops_scale": ((list,), None),
    "local_crops_scale": ((list,), None),
    "local_crops_number": ((int,), None),
    "global_crops_size": ((int,), None),
    "local_crops_size": ((int,), None),
    "model_type": ((str,), ("satdino", "dino")),
    "augmentation_type": ((str,), ("satdino", "dino2", "dino")),
    "normalization": ((str,), None),
    "gsd_loss": ((str, None), ("mse", None)),
    "gsd_weight": ((float,), None),
    "gsd_head": ((str,), GSD_HEAD_MODES),
    "temporal_dataset": ((bool,), None),
    "seed": ((int,), None),
    "saveckp_freq": ((int,), None),
    "num_workers": ((int,), None),
    "pos_interp": ((str,), ("official", "size")),
    "knn_freq": ((int,), None),
}


def _check_value(key: str, value: Any, where: str) -> Any:
    types, choices = SCHEMA[key]
    if value is None:
        if None not in types:
            raise ProtocolError(f"{where}: {key} must not be null")
        return None
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = any(t is not None and isinstance(value, t) and not (t is int and isinstance(value, bool)) for t in types)
    if not ok:
        names = "/".join("null" if t is None else t.__name__ for t in types)
        raise ProtocolError(f"{where}: {key} must be {names}, got {value!r}")
    if choices is not None and value not in choices:
        raise ProtocolError(f"{where}: {key} must be one of {[c for c in choices if c is not None]}, got {value!r}")
    if key in ("global_crops_scale", "local_crops_scale"):
        if len(value) != 2 or not all(isinstance(v, (int, float)) for v in value) or not 0 < value[0] < value[1] <= 1:
            raise ProtocolError(f"{where}: {key} must be [lo, hi] with 0 < lo < hi <= 1, got {value!r}")
        value = [float(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and key not in ("seed", "knn_freq", "clip_grad") \
            and value <= 0 and key not in ("freeze_last_layer", "warmup_epochs", "warmup_teacher_temp_epochs",
                                           "saveckp_freq", "num_workers"):
        raise ProtocolError(f"{where}: {key} must be > 0, got {value!r}")
    return value


def validate(params: dict[str, Any], where: str) -> dict[str, Any]:
    """Check every key of ``params`` against :data:`SCHEMA` (all keys required, none unknown)."""
    unknown = sorted(set(params) - set(SCHEMA))
    if unknown:
        raise ProtocolError(f"{where}: unknown key(s) {', '.join(unknown)}")
    missing = sorted(set(SCHEMA) - set(params))
    if missing:
        raise ProtocolError(f"{where}: missing key(s) {', '.join(missing)}")
    out = {k: _check_value(k, v, where) for k, v in params.items()}
    if out["model_type"] == "dino" and out["gsd_loss"] is not None:
        raise ProtocolError(f"{where}: model_type dino (plain DINO ViT) has no GSD register; set gsd_loss: null")
    if out["augmentation_type"] == "dino" and out["gsd_loss"] is not None:
        raise ProtocolError(f"{where}: augmentation_type dino carries no per-view GSD; set gsd_loss: null")
    if out["warmup_teacher_temp_epochs"] > out["epochs"]:
        raise ProtocolError(f"{where}: warmup_teacher_temp_epochs ({out['warmup_teacher_temp_epochs']}) "
                            f"exceeds epochs ({out['epochs']})")
    if out["warmup_epochs"] >= out["epochs"]:
        raise ProtocolError(f"{where}: warmup_epochs ({out['warmup_epochs']}) must be < epochs ({out['epochs']})")
    return out


def parse_sets(items: Iterable[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict, values parsed as YAML (``1e-3``, ``[0.4, 1]``, ``null``, ``true``)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ProtocolError(f"--set {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key not in SCHEMA:
            from satbench.errors import close_matches

            raise ProtocolError(f"--set {key}: unknown pretraining key{close_matches(key, sorted(SCHEMA))}")
        try:
            value = load_yaml(raw, f"--set {key}", ProtocolError) if raw.strip() else None
        except yaml.YAMLError:
            raise ProtocolError(f"--set {item!r}: the value is not valid YAML") from None
        if float in SCHEMA[key][0]:
            value = _coerce_float(value)
        out[key] = value
        _check_value(key, out[key], f"--set {key}")
    return out


def _coerce_float(value: Any) -> Any:
    # YAML 1.1 reads "1e-3" (no dot) as a string; accept it as the number it obviously is.
    if isinstance(value, str):
        try:
            f = float(value)
        except ValueError:
            return value
        return f if math.isfinite(f) else value
    return value


def load_config(name_or_path: str, sets: Iterable[str] = ()) -> Protocol:
    """The pretraining protocol ``name_or_path`` with ``--set`` overrides applied and validated."""
    proto = load_protocol(name_or_path, task="pretrain")
    validate(dict(proto.params), f"pretrain config {proto.path or proto.name}")
    overrides = parse_sets(sets)
    if overrides:
        content = copy.deepcopy(proto.content)
        content["params"].update(copy.deepcopy(overrides))
        proto = Protocol(proto.name, proto.task, content, proto.path, proto.base_hash,
                         {**proto.overrides, **overrides})
    validate(dict(proto.params), f"pretrain config {proto.name} (with --set)")
    return proto


def resolved(proto: Protocol) -> dict[str, Any]:
    """The validated, type-normalised parameters of a pretraining protocol."""
    return validate(dict(proto.params), f"pretrain config {proto.name}")
