"""The vote of the multi-scale kNN: DINO's ``knn_classifier`` (one-hot labels x ``exp(sim / T)`` summed per class,
``sort`` descending, top-1 and top-5), always computed in torch whatever backend found the neighbours.

Vote arithmetic (:func:`knn_vote_with_form`): ``"official"`` is DINO's ``exp(sim / T)`` in float32, used whenever no
weight can overflow, underflow to a subnormal/zero or make a class sum overflow (always at T = 0.07 on cosine
similarities); otherwise ``"shifted"``: ``exp((sim - max_j sim_j) / T)`` per query in float64, which ranks classes as
the official formula does in exact arithmetic (every class sum is divided by the same ``exp(max / T)``).
:func:`knn_classify` is one search with ``k_max = max(k)`` and the vote of every k from it.

Confidence (for calibration, :mod:`satbench.stats.calibration`): the top class's share of the vote,
``votes[top] / sum_c votes[c]`` (the normalised weighted votes; the vote sums as computed, divided in float64). It is
exactly 1 when the k neighbours share one class, and the same in both arithmetic forms up to rounding (the shift
divides every class sum by one number).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import torch

from satbench.errors import ProtocolError, SatbenchError
from satbench.eval.knn_search import knn_search, l2_normalize

VOTE_FORMS = ("official", "shifted")

_F32 = torch.finfo(torch.float32)
#: ``exp(x)`` overflows float32 above this (log of the largest float32).
EXP_OVERFLOW = math.log(_F32.max)
#: ``exp(x)`` is subnormal (lost precision) or zero below this (log of the smallest normal float32).
EXP_UNDERFLOW = math.log(_F32.tiny)



@dataclass
class KnnResult:
    """Top-1 and top-5 (%) for each k of one scale; ``vote``: the vote arithmetic used per k; ``search``: the plan;
    ``pred``: per k, each query's top-1 class (int64, query order); ``top5_hit``: per k, whether its label is among the
    first ``min(5, k)`` classes (the per-image terms of ``top1`` / ``top5``, from the same ranking); ``conf``: per k,
    the top class's share of the weighted vote (float64 in (0, 1])."""

    top1: dict[int, float]
    top5: dict[int, float]
    vote: dict[int, str] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    pred: dict[int, np.ndarray] = field(default_factory=dict)
    top5_hit: dict[int, np.ndarray] = field(default_factory=dict)
    conf: dict[int, np.ndarray] = field(default_factory=dict)



def _check_temperature(temperature: float) -> None:
    if not (isinstance(temperature, numbers.Real) and not isinstance(temperature, bool)
            and math.isfinite(temperature) and temperature > 0):
        raise ProtocolError(f"kNN temperature must be a finite number > 0, got {temperature!r}")


def knn_vote_form(sims: torch.Tensor, k: int, temperature: float) -> str:
    """``"official"`` when ``exp(sim / T)`` over the first ``k`` similarities can neither overflow (nor can a sum of
    ``k`` of them) nor fall below the smallest normal float32 -- ``max |sim| / T <= min(ln(FLT_MAX) - ln k,
    -ln(FLT_MIN)) - 1`` -- else ``"shifted"``. Cosine similarities at T = 0.07 give at most 14.3: always official."""
    _check_temperature(temperature)
    d = sims[:, :k]
    if d.numel() == 0:
        return "official"
    if not bool(torch.isfinite(d).all()):
        bad = int((~torch.isfinite(d)).any(dim=1).sum())
        raise SatbenchError(f"kNN vote: the similarities of {bad} of {d.shape[0]} queries are NaN or inf "
                            f"(non-finite features); refusing to vote")
    limit = min(EXP_OVERFLOW - math.log(k), -EXP_UNDERFLOW) - 1.0
    return "official" if float(d.abs().max()) / float(temperature) <= limit else "shifted"


def knn_vote_with_form(sims: torch.Tensor, indices: torch.Tensor, train_labels: torch.Tensor, num_classes: int,
                       k: int, temperature: float, chunk: int = 1024,
                       form: Optional[str] = None) -> tuple[torch.Tensor, str]:
    """Class ranking ``[n, C]`` (best first) from the first ``k`` neighbours and the vote arithmetic used.

    ``"official"`` is DINO's ``knn_classifier`` verbatim: one-hot(neighbour labels) x ``exp(sim / T)`` summed over
    neighbours, ``sort(descending)``. ``"shifted"``: the same in float64 with weights ``exp((sim - max sim) / T)``
    (per query), which cannot overflow and always gives the nearest neighbour weight 1. ``form=None`` picks
    :func:`knn_vote_form`; forcing ``"official"`` where it would overflow is refused."""
    ranking, form, _ = knn_vote_confidence(sims, indices, train_labels, num_classes, k, temperature, chunk, form)
    return ranking, form


def knn_vote_confidence(sims: torch.Tensor, indices: torch.Tensor, train_labels: torch.Tensor, num_classes: int,
                        k: int, temperature: float, chunk: int = 1024,
                        form: Optional[str] = None) -> tuple[torch.Tensor, str, np.ndarray]:
    """:func:`knn_vote_with_form` and each query's confidence: the top class's share of the vote (float64)."""
    auto = knn_vote_form(sims, k, temperature)
    if form is None:
        form = auto
    elif form not in VOTE_FORMS:
        raise SatbenchError(f"kNN vote form must be one of {', '.join(VOTE_FORMS)}, got {form!r}")
    elif form == "official" and auto != "official":
        raise SatbenchError(f"kNN vote: exp(sim / T) overflows or underflows float32 at T = {temperature} "
                            f"(k = {k}); the official arithmetic cannot be used here")
    preds, confs = [], []
    for i in range(0, sims.shape[0], chunk):
        d = sims[i:i + chunk, :k]
        j = indices[i:i + chunk, :k]
        b = d.shape[0]
        retrieved = torch.gather(train_labels.view(1, -1).expand(b, -1), 1, j)
        if form == "official":
            one_hot = torch.zeros(b * k, num_classes)
            one_hot.scatter_(1, retrieved.reshape(-1, 1), 1)
            weights = d.clone().div_(temperature).exp_()
        else:
            x = d.to(torch.float64)
            one_hot = torch.zeros(b * k, num_classes, dtype=torch.float64)
            one_hot.scatter_(1, retrieved.reshape(-1, 1), 1)
            weights = (x - x.max(dim=1, keepdim=True).values).div_(temperature).exp_()
        probs = torch.sum(torch.mul(one_hot.view(b, -1, num_classes), weights.view(b, -1, 1)), 1)
        _, order = probs.sort(1, True)
        preds.append(order)
        top = torch.gather(probs, 1, order[:, :1]).squeeze(1).to("cpu", torch.float64)
        confs.append((top / probs.to("cpu", torch.float64).sum(1)).numpy())
    ranking = torch.cat(preds) if preds else torch.zeros(0, num_classes, dtype=torch.int64)
    return ranking, form, (np.concatenate(confs) if confs else np.zeros(0, dtype=np.float64))


def knn_vote(sims: torch.Tensor, indices: torch.Tensor, train_labels: torch.Tensor, num_classes: int, k: int,
             temperature: float, chunk: int = 1024) -> torch.Tensor:
    """Class ranking ``[n, C]`` (best first) from the first ``k`` neighbours, as DINO's ``knn_classifier``:
    one-hot(neighbour labels) x ``exp(sim / T)`` summed over neighbours, then ``sort(descending)``; in the shifted form
    where that would overflow (see :func:`knn_vote_with_form`, which also returns the form)."""
    return knn_vote_with_form(sims, indices, train_labels, num_classes, k, temperature, chunk)[0]


def topk_accuracy(ranking: torch.Tensor, targets: torch.Tensor, k: int) -> tuple[float, float]:
    """Top-1 and top-5 accuracy (%) of a class ranking; top-5 uses ``min(5, k)`` columns as DINO does."""
    correct = ranking.eq(targets.view(-1, 1))
    n = max(1, targets.shape[0])
    top1 = correct[:, :1].sum().item() * 100.0 / n
    top5 = correct[:, :min(5, k, ranking.shape[1])].sum().item() * 100.0 / n
    return top1, top5


def _labels(y: Sequence[int] | torch.Tensor | np.ndarray) -> torch.Tensor:
    if isinstance(y, torch.Tensor):
        return y.detach().to("cpu", torch.int64)
    return torch.as_tensor(np.asarray(list(y) if not isinstance(y, np.ndarray) else y, dtype=np.int64))


def knn_classify(train_feats: np.ndarray | torch.Tensor, train_labels: Sequence[int], test_feats: np.ndarray | torch.Tensor,
                 test_labels: Sequence[int], ks: Sequence[int], temperature: float, num_classes: int, *,
                 backend: str = "faiss", device: Optional[torch.device] = None,
                 max_block_bytes: Optional[int] = None) -> KnnResult:
    """Weighted kNN top-1/top-5 for every k in ``ks`` from ONE search with ``k_max = max(ks)``.

    Features may be arrays or tensors on any device; tensors are L2-normalised where they are (a GPU feature matrix
    never goes to the host with the torch backend; faiss needs host memory)."""
    _check_temperature(temperature)
    x = l2_normalize(train_feats)
    q = l2_normalize(test_feats)
    ytr = _labels(train_labels)
    yte = _labels(test_labels)
    info: dict[str, Any] = {}
    sims, idx = knn_search(x, q, max(ks), backend=backend, device=device, max_block_bytes=max_block_bytes, info=info)
    top1, top5, vote, pred, hit5, conf = {}, {}, {}, {}, {}, {}
    for k in ks:
        ranking, vote[k], conf[k] = knn_vote_confidence(sims, idx, ytr, num_classes, k, temperature)
        top1[k], top5[k] = topk_accuracy(ranking, yte, k)
        pred[k], hit5[k] = per_image_predictions(ranking, yte, k)
    return KnnResult(top1, top5, vote, info, pred, hit5, conf)


def per_image_predictions(ranking: torch.Tensor, targets: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(top-1 class int64 ``[n]``, top-5 hit bool ``[n]``) of a class ranking: the per-image terms whose means are
    :func:`topk_accuracy` (top-5 over ``min(5, k)`` columns, as DINO)."""
    correct = ranking.eq(targets.view(-1, 1))
    hit5 = correct[:, :min(5, k, ranking.shape[1])].any(dim=1)
    return ranking[:, 0].to(torch.int64).numpy().copy(), hit5.numpy().copy()
