"""Classification metrics of the probes: top-k correct counts and the per-evaluation summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from torch import Tensor


@dataclass
class EvalMetrics:
    loss: float
    acc1: float
    acc5: Optional[float]
    n: int
    #: the features check of this evaluation's val features (:mod:`satbench.eval.feature_guard`; not in the history)
    features: Optional[dict[str, Any]] = field(default=None, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {"val_loss": self.loss, "acc1": self.acc1, "acc5": self.acc5, "n_val": self.n}


def topk_correct(logits: Tensor, target: Tensor, ks: Sequence[int]) -> list[int]:
    """Number of samples whose label is among the top-k logits, for each k (ties broken by ``topk``)."""
    maxk = min(max(ks), logits.shape[1])
    pred = logits.topk(maxk, dim=1).indices
    hit = pred.eq(target.view(-1, 1))
    return [int(hit[:, :min(k, maxk)].any(dim=1).sum()) for k in ks]


