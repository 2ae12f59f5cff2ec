"""Let mmsegmentation 1.2.2 import on top of ``mmcv-lite`` (mmcv without the compiled ``mmcv._ext``).

mmseg imports ``mmcv.ops`` at module level in four places (``point_sample`` three times, which is pure
PyTorch inside mmcv, and ``sigmoid_focal_loss``, only called for CUDA tensors). ``mmcv/ops/__init__.py``
eagerly loads the compiled extension, so under mmcv-lite ``import mmseg.models`` fails. :func:`install`
registers a bare ``mmcv.ops`` package whose ``__path__`` is mmcv's real ``ops`` folder (so pure
submodules such as ``mmcv.ops.point_sample`` still import), exposes the pure-PyTorch ``point_sample`` /
``bilinear_grid_sample``, gives ``sigmoid_focal_loss`` a stub that raises a clear error, and makes every
other attribute raise :class:`ModuleNotFoundError` (mmseg's optional heads guard with
``except ModuleNotFoundError``). When compiled mmcv is importable it does nothing.

Call :func:`install` before the first ``import mmseg...``; ``import satbench.seg`` does it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import types
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

_MARK = "__satbench_compat__"


def compiled_mmcv_available() -> bool:
    """True when mmcv's compiled extension ``mmcv._ext`` can be imported (full mmcv, not mmcv-lite)."""
    try:
        return importlib.util.find_spec("mmcv._ext") is not None
    except (ImportError, ValueError):
        return False


def _focal_loss_stub(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(
        "sigmoid_focal_loss needs compiled mmcv ops (mmcv._ext), which mmcv-lite lacks; "
        "mmseg only calls it for CUDA tensors: use CrossEntropyLoss, or install compiled mmcv==2.1.0"
    )


class _OpsModule(types.ModuleType):
    """A stand-in for ``mmcv.ops`` that only offers the pure-PyTorch ops."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ModuleNotFoundError(
            f"mmcv.ops.{name} needs compiled mmcv ops (mmcv._ext), which mmcv-lite lacks "
            f"(satbench's mmcv compatibility layer offers only point_sample and bilinear_grid_sample)",
            name="mmcv._ext",
        )


def is_installed() -> bool:
    """True when the compatibility ``mmcv.ops`` is in place."""
    mod = sys.modules.get("mmcv.ops")
    return mod is not None and getattr(mod, _MARK, False)


def install() -> bool:
    """Install the ``mmcv.ops`` stand-in if compiled mmcv is missing. Returns True when installed
    (now or before), False when compiled mmcv is present and nothing was done. Idempotent."""
    if is_installed():
        return True
    if compiled_mmcv_available():
        return False
    import mmcv

    ops_dir = Path(mmcv.__file__).resolve().parent / "ops"
    ops = _OpsModule("mmcv.ops")
    ops.__path__ = [str(ops_dir)]  # type: ignore[attr-defined]
    ops.__file__ = str(ops_dir / "__init__.py")
    ops.__package__ = "mmcv.ops"
    setattr(ops, _MARK, True)
    sys.modules["mmcv.ops"] = ops
    mmcv.ops = ops  # type: ignore[attr-defined]
    point_sample = importlib.import_module("mmcv.ops.point_sample")  # pure PyTorch, no _ext
    ops.point_sample = point_sample.point_sample  # type: ignore[attr-defined]
    ops.bilinear_grid_sample = point_sample.bilinear_grid_sample  # type: ignore[attr-defined]
    ops.sigmoid_focal_loss = _focal_loss_stub  # type: ignore[attr-defined]
    return True


@contextmanager
def allow_full_checkpoint_load() -> Iterator[None]:
    """Set ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` for the duration of the block, then restore it.

    mmengine 0.10.7 loads with a plain ``torch.load``; its checkpoints hold a ``HistoryBuffer`` (message hub)
    that torch >= 2.6's ``weights_only`` default rejects. satbench's own resume no longer needs this (it loads
    weights-only with an allow-list, :mod:`satbench.seg.safe_resume`); it remains for explicitly trusted loads
    (``--trust-checkpoint``) that go through mmengine.
    """
    key = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
    old = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
