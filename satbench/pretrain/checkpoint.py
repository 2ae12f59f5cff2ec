"""Training checkpoints (atomic, resumable) and the exported teacher in the official format.

``checkpoint.pth`` (every epoch) and ``checkpointXXXX.pth`` (every ``saveckp_freq`` epochs) hold
``student`` / ``teacher`` (``backbone.*``, ``head.*``), ``optimizer``, ``fp16_scaler``, ``dino_loss``
(the centre), ``epoch`` (the next epoch), ``config`` (the resolved config), ``gsd_head`` (+ its mode) and
``rng`` (torch / numpy / python states of every rank). ``teacher.pth`` is ``{'teacher': backbone keys}``
(151 tensors at depth 12), readable by ``satbench run --weights`` and the official loader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from satbench.errors import WeightsError
from satbench.models.checkpoints import read_checkpoint
from satbench.io.atomic import atomic_torch_save
from satbench.runtime.rng import rng_state, set_rng_state  # noqa: F401  (re-exported for the trainer)

CHECKPOINT = "checkpoint.pth"
TEACHER = "teacher.pth"


def backbone_state(wrapper_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``backbone.*`` keys of a (possibly ``module.``-prefixed) wrapper state, prefixes removed."""
    out = {}
    for k, v in wrapper_state.items():
        k = k.removeprefix("module.")
        if k.startswith("backbone."):
            out[k[len("backbone."):]] = v.detach().cpu().clone()
    return out


def save_checkpoint(obj: dict[str, Any], output_dir: Path, epoch_done: int, saveckp_freq: int) -> Path:
    """Write ``checkpoint.pth`` (and ``checkpointXXXX.pth`` on the save frequency) atomically."""
    path = atomic_torch_save(obj, output_dir / CHECKPOINT)
    if saveckp_freq and epoch_done % saveckp_freq == 0:
        atomic_torch_save(obj, output_dir / f"checkpoint{epoch_done:04d}.pth")
    return path


def export_teacher(teacher_state: dict[str, torch.Tensor], output_dir: Path, meta: dict[str, Any]) -> Path:
    """Write ``teacher.pth`` = ``{'teacher': backbone-only keys, 'satbench_pretrain': meta}`` atomically."""
    return atomic_torch_save({"teacher": backbone_state(teacher_state), "satbench_pretrain": meta},
                             output_dir / TEACHER)


def load_training_checkpoint(path: Path) -> dict[str, Any]:
    """Read a training checkpoint written by :func:`save_checkpoint` (``weights_only`` load)."""
    if not path.is_file():
        raise WeightsError(f"--resume: no checkpoint at {path}")
    obj = read_checkpoint(path, what="satbench pretraining checkpoint")
    needed = {"student", "teacher", "optimizer", "epoch", "config", "dino_loss", "rng"}
    if not isinstance(obj, dict) or not needed <= set(obj):
        have = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise WeightsError(f"{path}: not a satbench pretraining checkpoint (needs {sorted(needed)}, has {have})")
    return obj
