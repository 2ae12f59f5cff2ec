"""Resuming a segmentation run without unpickling code: mmengine ``iter_N.pth`` checkpoints read weights-only.

mmengine 0.10.7 resumes with a plain ``torch.load`` (``load_from_local``) of the file that the work dir's
``last_checkpoint`` names. Both are untrusted input, so satbench

* reads ``last_checkpoint`` itself (:func:`find_resume_checkpoint`): a size-capped regular file (never a FIFO),
  naming an existing regular file *inside* the work dir -- anything else is a one-line error;
* loads the checkpoint with ``torch.load(weights_only=True)`` and an allow-list of exactly the non-tensor types an
  mmengine checkpoint holds (:func:`read_resume_checkpoint`): numpy arrays, dtypes and scalars, mmengine's
  ``HistoryBuffer`` (the message hub's logs) and ``builtins.getattr`` -- the latter replaced by a function that
  only returns ``HistoryBuffer.min/max/current/mean`` (how a pickled ``HistoryBuffer`` names its statistics
  methods); a general ``getattr`` would be a code-execution gadget. Anything else is refused with the type, the
  file and ``--trust-checkpoint`` named; with ``--trust-checkpoint`` the full (unsafe) load is used;
* drops ``meta['config']``, a config *text* that ``Runner.resume`` would execute through
  ``Config.fromstring(..., '.py')`` (mmengine writes ``meta['cfg']``, which it never executes);
* swaps mmengine's local checkpoint loader only while :meth:`Runner.resume` runs (:func:`install`), and only for
  the checked file.
"""

from __future__ import annotations

import os
import pickle

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch

from satbench.runtime import mmcv_compat

mmcv_compat.install()

from mmengine.logging.history_buffer import HistoryBuffer  # noqa: E402

from satbench.models.checkpoints import read_checkpoint  # noqa: E402
from satbench.errors import WeightsError  # noqa: E402
from satbench.seg.untrusted import read_small_file  # noqa: E402

LAST_CHECKPOINT = "last_checkpoint"
MAX_POINTER_BYTES = 4096
_STAT_METHODS = ("min", "max", "current", "mean")


def find_resume_checkpoint(work_dir: str | os.PathLike) -> Optional[Path]:
    """The checkpoint ``<work_dir>/last_checkpoint`` names, checked; None when there is no pointer file."""
    work_dir = Path(work_dir)
    pointer = work_dir / LAST_CHECKPOINT
    if not os.path.lexists(pointer):
        return None
    raw = read_small_file(pointer, MAX_POINTER_BYTES, what="the last_checkpoint pointer", follow_symlinks=False,
                          error=WeightsError)
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise WeightsError(f"{pointer}: not a UTF-8 checkpoint path") from None
    if not text or "\n" in text or "\r" in text or "\x00" in text:
        raise WeightsError(f"{pointer}: expected one line naming a checkpoint in {work_dir}")
    target = Path(text)
    if not target.is_absolute():
        target = work_dir / target
    real, root = Path(os.path.realpath(target)), Path(os.path.realpath(work_dir))
    if real == root or root not in real.parents:
        raise WeightsError(f"{pointer} names {text[:200]}, which is not inside the work dir {root}; satbench resumes "
                           f"only from checkpoints in the work dir (moved work dir? write one there into the file)")
    if not real.is_file():
        raise WeightsError(f"{pointer} names {real}, which is not an existing regular file")
    return real


def _history_buffer_method(owner: Any, name: Any) -> Any:
    """Stands in for ``builtins.getattr`` while unpickling: only ``HistoryBuffer``'s statistics methods."""
    if owner is HistoryBuffer and isinstance(name, str) and name in _STAT_METHODS:
        return getattr(HistoryBuffer, name)
    owner_name = getattr(owner, "__name__", type(owner).__name__)
    raise pickle.UnpicklingError(f"satbench refused builtins.getattr on {owner_name}.{str(name)[:40]}")


def resume_safe_globals() -> list[Any]:
    """The allow-list for mmengine iter_N.pth checkpoints (as found with ``get_unsafe_globals_in_checkpoint``)."""
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct, scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct, scalar  # type: ignore[no-redef]
    allowed: list[Any] = [np.ndarray, np.dtype, _reconstruct, scalar, HistoryBuffer,
                          (_history_buffer_method, "builtins.getattr")]
    for name in ("Float64DType", "Float32DType", "Float16DType", "Int64DType", "Int32DType", "BoolDType",
                 "UInt8DType"):  # np.dtype('f8') unpickles as an instance of numpy.dtypes.Float64DType
        t = getattr(getattr(np, "dtypes", None), name, None)
        if t is not None:
            allowed.append(t)
    return allowed


def _refusal(path: Path, what: str) -> WeightsError:
    return WeightsError(f"{path}: refused to resume from it: the checkpoint needs {what}, which is not on satbench's "
                        f"resume allow-list (mmengine HistoryBuffer, numpy arrays); if you trust this file, pass "
                        f"--trust-checkpoint to load it the unsafe way")


def read_resume_checkpoint(path: str | os.PathLike, *, trust_checkpoint: bool = False,
                           map_location: Any = "cpu") -> dict[str, Any]:
    """An mmengine training checkpoint, loaded weights-only with :func:`resume_safe_globals` (one-line errors)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: not an existing regular file")
    if path.stat().st_size == 0:
        raise WeightsError(f"{path}: the file is empty (0 bytes)")
    registry = dict(HistoryBuffer._statistics_methods)
    try:
        obj = read_checkpoint(path, trust_checkpoint=trust_checkpoint, extra_safe_globals=resume_safe_globals(),
                              what="mmengine checkpoint", map_location=map_location, refusal=_refusal)
    finally:
        if not trust_checkpoint and not _registry_ok(registry):
            HistoryBuffer._statistics_methods.clear()
            HistoryBuffer._statistics_methods.update(registry)
            raise _refusal(path, "HistoryBuffer statistics methods other than min/max/current/mean")
    _check_structure(obj, path)
    obj["meta"].pop("config", None)  # Runner.resume would run it as a Python config (Config.fromstring)
    return obj


def _registry_ok(before: dict[str, Any]) -> bool:
    """``HistoryBuffer.__setstate__`` updates the class-wide statistics registry from the file: after a load it may
    hold only what it held before plus mmengine's own four methods."""
    canonical = {k: getattr(HistoryBuffer, k) for k in _STAT_METHODS}
    return all((k in before and v is before[k]) or (k in canonical and v is canonical[k])
               for k, v in HistoryBuffer._statistics_methods.items())


def _check_structure(obj: Any, path: Path) -> None:
    if not (isinstance(obj, dict) and isinstance(obj.get("meta"), dict) and isinstance(obj.get("state_dict"), dict)):
        raise WeightsError(f"{path}: not an mmengine training checkpoint (expected a dict with 'meta' and "
                           f"'state_dict')")
    meta = obj["meta"]
    for key in ("epoch", "iter"):
        if not isinstance(meta.get(key), int) or isinstance(meta.get(key), bool) or meta[key] < 0:
            raise WeightsError(f"{path}: meta.{key} must be a non-negative integer, got {meta.get(key)!r:.40}")
    hub = obj.get("message_hub")
    if not isinstance(hub, dict) or not all(isinstance(hub.get(k), dict)
                                            for k in ("log_scalars", "runtime_info", "resumed_keys")):
        raise WeightsError(f"{path}: not an mmengine training checkpoint (no message_hub state)")
    bad = [k for k, v in obj["state_dict"].items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise WeightsError(f"{path}: state_dict entries that are not tensors: {bad[:3]}")


@contextmanager
def _local_loader(expected: Path, trust_checkpoint: bool) -> Iterator[None]:
    """mmengine's local checkpoint loader replaced by :func:`read_resume_checkpoint` for ``expected`` only."""
    from mmengine.runner.checkpoint import CheckpointLoader

    original = CheckpointLoader._schemes[""]

    def load_from_local_weights_only(filename: str, map_location: Any = None) -> dict[str, Any]:
        if Path(os.path.realpath(os.path.expanduser(filename))) != expected:
            raise WeightsError(f"{filename}: not the checked resume checkpoint {expected}")
        return read_resume_checkpoint(expected, trust_checkpoint=trust_checkpoint, map_location=map_location)

    CheckpointLoader._schemes[""] = load_from_local_weights_only
    try:
        yield
    finally:
        CheckpointLoader._schemes[""] = original


def install(runner: Any, checkpoint: str | os.PathLike, *, trust_checkpoint: bool = False) -> None:
    """Make ``runner.resume`` load ``checkpoint`` through :func:`read_resume_checkpoint` (this runner only)."""
    expected = Path(os.path.realpath(checkpoint))
    original: Callable[..., Any] = runner.resume

    def resume(filename: str, *args: Any, **kwargs: Any) -> Any:
        with _local_loader(expected, trust_checkpoint):
            return original(filename, *args, **kwargs)

    resume.__doc__ = original.__doc__
    runner.resume = resume
