"""The DINO loss with centring (upstream DINO, unchanged in SatDINO) and the GSD regression loss."""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from satbench.pretrain.schedules import teacher_temp_schedule


class DINOLoss(nn.Module):
    """Cross-entropy between centred, sharpened teacher outputs and every other student view.

    ``center`` is a ``[1, out_dim]`` buffer updated after every call with momentum ``center_momentum``
    from the batch mean of the raw teacher outputs, summed over processes by ``all_reduce`` (when given).
    """

    def __init__(self, out_dim: int, ncrops: int, warmup_teacher_temp: float, teacher_temp: float,
                 warmup_teacher_temp_epochs: int, nepochs: int, student_temp: float = 0.1,
                 center_momentum: float = 0.9,
                 all_reduce: Optional[Callable[[Tensor], tuple[Tensor, int]]] = None) -> None:
        super().__init__()
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.ncrops = ncrops
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.teacher_temp_schedule = teacher_temp_schedule(warmup_teacher_temp, teacher_temp,
                                                           warmup_teacher_temp_epochs, nepochs)
        self._all_reduce = all_reduce

    def forward(self, student_output: Tensor, teacher_output: Tensor, epoch: int) -> Tensor:
        student_out = (student_output / self.student_temp).chunk(self.ncrops)
        temp = float(self.teacher_temp_schedule[epoch])
        teacher_out = F.softmax((teacher_output - self.center) / temp, dim=-1).detach().chunk(2)
        total_loss: Tensor | float = 0.0
        n_loss_terms = 0
        for iq, q in enumerate(teacher_out):
            for v in range(len(student_out)):
                if v == iq:
                    continue
                loss = torch.sum(-q * F.log_softmax(student_out[v], dim=-1), dim=-1)
                total_loss = total_loss + loss.mean()
                n_loss_terms += 1
        total_loss = total_loss / n_loss_terms
        self.update_center(teacher_output)
        return total_loss  # type: ignore[return-value]

    @torch.no_grad()
    def update_center(self, teacher_output: Tensor) -> None:
        """EMA of the (all-reduced) batch mean of the teacher outputs."""
        batch_center = torch.sum(teacher_output, dim=0, keepdim=True)
        count = len(teacher_output)
        if self._all_reduce is not None:
            batch_center, world = self._all_reduce(batch_center)
            count *= world
        batch_center = batch_center / count
        self.center = self.center * self.center_momentum + batch_center * (1 - self.center_momentum)

    def temperature(self, epoch: int) -> float:
        return float(self.teacher_temp_schedule[epoch])


def gsd_loss(pred: Tensor, target: Tensor, kind: str = "mse") -> Tensor:
    """SatDINO's GSD loss: plain MSE between the read-out and the per-view GSD (metres/pixel, raw)."""
    if kind != "mse":
        raise ValueError(f"unsupported gsd loss {kind!r}")
    return F.mse_loss(pred.float(), target.float())

