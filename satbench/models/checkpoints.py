"""The one safe reader of checkpoint files: weights, training checkpoints (linear, pretraining), segmentors, mmengine
resume checkpoints.

``torch.load`` always runs with ``weights_only=True`` and an explicit allow-list: the non-tensor types the official
SatDINO, SatMAE and Scale-MAE files carry (:func:`safe_globals`: ``argparse.Namespace``, numpy arrays, dtypes and
scalars) plus whatever the caller adds (mmengine's ``HistoryBuffer`` for a segmentation resume). A file that needs
anything else is refused with the type named and the trust flag the user can pass (``--trust-checkpoint``); only
then is it loaded the unsafe way. ``.safetensors`` files are read with safetensors (tensors only, never code), and so
are the shards a ``model.safetensors.index.json`` names (:mod:`satbench.models.sharded`).
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

from satbench.errors import WeightsError
from satbench.io.bounded import UntrustedFileError, open_regular

_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")
_REFUSED_RE = re.compile(r"satbench refused ([\w.]+(?: on [\w.<>]+)?)")


def safe_globals() -> list[Any]:
    """The non-tensor types the official SatDINO, SatMAE and Scale-MAE files carry."""
    import numpy as np

    allowed: list[Any] = [argparse.Namespace, np.dtype, np.ndarray]
    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    allowed += [scalar, _reconstruct]
    for name in ("Float64DType", "Float32DType", "Float16DType", "Int64DType", "Int32DType", "BoolDType",
                 "UInt8DType", "StrDType"):
        t = getattr(np.dtypes, name, None)
        if t is not None:
            allowed.append(t)
    return allowed


def _unpickler_detail(msg: str) -> str:
    """The weights-only unpickler's own reason, out of torch's multi-line message."""
    lines = [ln.strip() for ln in msg.splitlines()]
    for i, ln in enumerate(lines):
        if "WeightsUnpickler error" in ln:
            rest = ln.split("WeightsUnpickler error", 1)[1].lstrip(": ")
            return rest or next((x for x in lines[i + 1:] if x), "")
    return next((x for x in lines if x), "")


def _default_refusal(path: Path, what: str, flag: str) -> WeightsError:
    return WeightsError(f"{path}: refused to load: the checkpoint needs {what}, which is not on satbench's safe list; "
                        f"if you trust this file, pass {flag} to load it the unsafe way")


def _is_raw_pickle(path: Path) -> bool:
    """Whether the file starts like a pickle of protocol 2-5 (``PROTO n``): a legacy ``torch.save`` / plain pickle the
    weights-only loader cannot read as data (as opposed to a file that is not a pickle at all)."""
    try:
        with open_regular(path, "rb") as fh:
            head = fh.read(2)
    except (OSError, UntrustedFileError):
        return False
    return len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def read_checkpoint(path: str | os.PathLike, *, trust_checkpoint: bool = False,
                    extra_safe_globals: Sequence[Any] = (), what: str = "PyTorch checkpoint",
                    flag: str = "--trust-checkpoint", map_location: Any = "cpu",
                    refusal: Optional[Callable[[Path, str], Exception]] = None) -> Any:
    """Read a ``.pth``/``.safetensors`` file without executing code hidden in it (see the module docstring).

    ``what`` names the kind of file in errors (``not a readable <what>``); ``refusal(path, "the type X")`` makes the
    error for a file needing something outside the allow-list (default: names the type and ``flag``).
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise WeightsError(f"{path} does not exist (expected a {what})") from None
    if not path.is_file():
        raise WeightsError(f"{path} is not a regular file (expected a {what})")
    if size == 0:
        raise WeightsError(f"{path}: the file is empty (0 bytes)")
    from satbench.models.sharded import is_index, read_sharded

    if is_index(path):  # a sharded snapshot: the index names its shards (checked, satbench.models.sharded)
        return read_sharded(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0][:160]})") from None
    import torch

    refuse = refusal or (lambda p, w: _default_refusal(p, w, flag))
    try:
        if trust_checkpoint:
            return torch.load(path, map_location=map_location, weights_only=False)
        with torch.serialization.safe_globals(safe_globals() + list(extra_safe_globals)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        m = _REFUSED_RE.search(msg) or _GLOBAL_RE.search(msg)
        if m and ("satbench refused" in msg or "not an allowed global" in msg or "Unsupported global" in msg):
            raise refuse(path, f"the type {m.group(1)}") from None
        detail = _unpickler_detail(msg)
        if "reduce" in detail or "Can only" in detail or (
                "Unsupported operand" in detail and _is_raw_pickle(path)):
            raise refuse(path, f"an operation the weights-only loader refused ({detail[:120]})") from None
        raise WeightsError(f"{path}: not a readable {what} (neither a torch.save zip archive nor a loadable legacy "
                           f"pickle: {detail[:160]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError, ImportError,
            ModuleNotFoundError, TypeError, KeyError, IndexError, MemoryError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise WeightsError(f"{path}: not a readable {what} ({first[:160]})") from None


def tensors_sha256(tensors: Mapping[str, Any]) -> str:
    """The weights' identity independent of the file they came in: sha256 over every tensor of ``tensors`` (a state
    dict), in sorted key order, each as ``key|dtype|shape|`` followed by its raw bytes (C order). The same weights
    saved as ``.safetensors`` and as ``.pth`` hash alike; the file's own sha256 does not. Hashes the tensors in place
    (no copy for contiguous CPU tensors). A value that is not a tensor is a :class:`WeightsError` naming its key."""
    import hashlib

    import torch

    h = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key]
        if not isinstance(t, torch.Tensor):
            raise WeightsError(f"state dict entry {key!r} is a {type(t).__name__}, not a tensor")
        t = t.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def fmt_keys(keys: list[str], n: int = 8) -> str:
    """At most ``n`` keys, then how many more."""
    more = f" ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def state_dict_problems(own: dict[str, Any], sd: dict[str, Any]) -> list[str]:
    """The strict-load comparison of a state dict with a model's: missing, unexpected and mis-shaped keys (empty when
    every key fits). The one strict key check (backbones and segmentors)."""
    import torch

    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    bad_shape = sorted(k for k in set(own) & set(sd)
                       if not isinstance(sd[k], torch.Tensor) or tuple(sd[k].shape) != tuple(own[k].shape))
    problems = []
    if missing:
        problems.append(f"missing keys: {fmt_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {fmt_keys(unexpected)}")
    if bad_shape:
        problems.append("mis-shaped keys: " + fmt_keys(
            [f"{k} {tuple(getattr(sd[k], 'shape', ()))} vs {tuple(own[k].shape)}" for k in bad_shape]))
    return problems


#: Entries under which training scripts commonly nest the state dict (DINO: ``student``/``teacher``; others ``model``...).
NESTING_KEYS = ("student", "teacher", "model", "state_dict", "model_state_dict", "module", "ema", "model_ema")


def _common_dotted_prefix(keys: list[str]) -> str:
    """The longest ``a.b.`` prefix every key shares (whole dotted parts only)."""
    if not keys:
        return ""
    parts = [k.split(".") for k in keys]
    out: list[str] = []
    for group in zip(*(p[:-1] for p in parts)):
        if len(set(group)) != 1:
            break
        out.append(group[0])
    return ".".join(out) + "." if out else ""


def nesting_hint(obj: Any, own: Any = None) -> str:
    """What a checkpoint that does not fit holds, as a ``; hint: ...`` suffix (empty when nothing is found): a state dict
    nested under ``student``/``teacher``/``model``/``state_dict``..., and a key prefix every key shares that the model's
    own keys lack (``module.backbone.``), with the card key that takes it."""
    import torch

    if not isinstance(obj, dict):
        return ""
    own_keys = set(own or ())
    hints: list[str] = []
    nested = [k for k in obj if isinstance(obj[k], dict) and any(isinstance(v, torch.Tensor) for v in obj[k].values())]
    nested.sort(key=lambda k: (k not in NESTING_KEYS, NESTING_KEYS.index(k) if k in NESTING_KEYS else 0))
    sd = obj
    if nested:
        k = nested[0]
        sd = obj[k]
        n = sum(isinstance(v, torch.Tensor) for v in sd.values())
        hints.append(f"the checkpoint nests a state dict of {n} tensors under {k!r}"
                     + (f" (also: {', '.join(map(repr, nested[1:]))})" if len(nested) > 1 else "")
                     + f"; save that entry on its own (torch.save(ckpt[{k!r}], PATH))")
    keys = [k for k, v in sd.items() if isinstance(k, str) and isinstance(v, torch.Tensor)]
    own_prefix = _common_dotted_prefix(sorted(own_keys)) if len(own_keys) > 1 else ""  # e.g. a wrapper's "inner."
    prefix = _common_dotted_prefix(keys)
    if prefix.startswith(own_prefix) and prefix != own_prefix:
        prefix = prefix[len(own_prefix):]
        keys = [k[len(own_prefix):] for k in keys]
    else:
        prefix = ""
    if prefix and not any(k.startswith(own_prefix + prefix) for k in own_keys):
        fits = sum(own_prefix + k[len(prefix):] in own_keys for k in keys) if own_keys else None
        hints.append(f"every key starts with {prefix!r}" + (f" ({fits} of {len(keys)} keys fit once it is stripped)"
                                                            if fits is not None else "")
                     + f"; a card takes it with weights.<kind>.key_prefix: {prefix!r}")
    return ("; hint: " + "; ".join(hints)) if hints else ""
