"""Multi-scale weighted kNN, exactly as SatDINO evaluates (spec 3.3), with FAISS on CPU and exact torch top-k on GPU.

Pipeline of :func:`run_knn`: protocol -> per-scale views (:mod:`satbench.eval.knn_protocols`) -> one decode per image for
all scales, batched by size, features cached (:func:`satbench.eval.extract.extract_views`) -> L2-normalised CLS ->
one neighbour search per scale with ``k_max = max(k)`` -> every k from that search -> DINO's ``knn_classifier`` vote
(one-hot labels x ``exp(sim / T)`` summed per class, ``sort`` descending, top-1 and top-5) -> a result record.

The vote is always computed in torch with DINO's exact formulation, whatever backend found the neighbours, so only the
neighbour search differs between backends; :func:`knn_search` returns the same neighbours on both (pinned by a test).

Search in bounded memory (:func:`knn_search`): the torch path runs query chunks x train blocks with a running top-k
merge on the device the features live on; the faiss path searches query blocks with ``faiss.knn`` (no copy of the
train matrix into an index). Block edges are aligned so that every similarity is computed by the same BLAS call shape
as in the unblocked search, so blocked and unblocked searches return identical similarities and neighbours.
Tie rule (both backends, blocked or not): neighbours are ordered by decreasing similarity, equal similarities by
increasing train index, and a tie at the k-th place keeps the lower train indices.

Vote arithmetic (:func:`knn_vote_with_form`): ``"official"`` is DINO's ``exp(sim / T)`` in float32, used whenever no
weight can overflow, underflow to a subnormal/zero or make a class sum overflow (always at T = 0.07 on cosine
similarities); otherwise ``"shifted"``: ``exp((sim - max_j sim_j) / T)`` per query in float64, which ranks classes as
the official formula does in exact arithmetic (every class sum is divided by the same ``exp(max / T)``).
"""

from __future__ import annotations

import math
import numbers
import os
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import torch

from satbench.eval.cache import FeatureCache
from satbench.data.scene import SceneDataset
from satbench.errors import ProtocolError, SatbenchError
from satbench.models.features import FeatureExtractor
from satbench.data.normalization import Normalization
from satbench.config.protocols import Protocol
from satbench.records.results import make_record
from satbench.models.weights import LoadedModel
from satbench.eval.extract import ExtractStats, extract_views
from satbench.eval.knn_protocols import ScaleEntry, build_scale_entries, protocol_normalization

BACKENDS = ("auto", "faiss", "torch")
VOTE_FORMS = ("official", "shifted")

_F32 = torch.finfo(torch.float32)
#: ``exp(x)`` overflows float32 above this (log of the largest float32).
EXP_OVERFLOW = math.log(_F32.max)
#: ``exp(x)`` is subnormal (lost precision) or zero below this (log of the smallest normal float32).
EXP_UNDERFLOW = math.log(_F32.tiny)
#: Train-block edges of the torch search sit on multiples of this, so that each similarity comes out of the same
#: matmul micro-kernel position as in the unblocked ``Q @ X.T`` (checked bit for bit on MKL; small or odd blocks differ).
TORCH_TRAIN_ALIGN = 1024
#: Candidates searched beyond k: a tie straddling the k-th place is settled without a second search unless more than
#: this many neighbours share the k-th similarity.
TIE_MARGIN = 16
_ROWS_PER_CHECK = 65536


@dataclass
class KnnResult:
    """Top-1 and top-5 (%) for each k of one scale; ``vote``: the vote arithmetic used per k; ``search``: the plan;
    ``pred``: per k, each query's top-1 class (int64, query order); ``top5_hit``: per k, whether its label is among the
    first ``min(5, k)`` classes (the per-image terms of ``top1`` / ``top5``, from the same ranking)."""

    top1: dict[int, float]
    top5: dict[int, float]
    vote: dict[int, str] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    pred: dict[int, np.ndarray] = field(default_factory=dict)
    top5_hit: dict[int, np.ndarray] = field(default_factory=dict)


def l2_normalize(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Row-wise L2 normalisation in float32 (``nn.functional.normalize(x, dim=1, p=2)``, as the official code).

    A tensor stays on its device (a CUDA feature matrix is normalised on the GPU, no host round trip)."""
    t = torch.as_tensor(x, dtype=torch.float32)
    return torch.nn.functional.normalize(t, dim=1, p=2)


def resolve_backend(backend: str, device: torch.device) -> str:
    """``auto`` -> ``faiss`` on CPU (faiss-cpu), ``torch`` on CUDA (exact chunked matmul + topk)."""
    if backend not in BACKENDS:
        raise SatbenchError(f"kNN backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "torch" if device.type == "cuda" else "faiss"
    return backend


def _check_finite(x: torch.Tensor, what: str) -> None:
    """One clear line if ``x`` (rows = samples) holds NaN or inf; checked in row blocks (no full-size temporary).

    A finite row sum proves a row finite (NaN and inf propagate); only blocks with a non-finite sum (or an overflowing
    one) are checked element-wise."""
    bad, first = 0, -1
    for a in range(0, x.shape[0], _ROWS_PER_CHECK):
        blk = x[a:a + _ROWS_PER_CHECK].reshape(min(_ROWS_PER_CHECK, x.shape[0] - a), -1)
        if bool(torch.isfinite(blk.sum(dim=1)).all()):
            continue
        rows = ~torch.isfinite(blk).all(dim=1)
        n = int(rows.sum())
        if n and first < 0:
            first = a + int(rows.nonzero()[0, 0])
        bad += n
    if bad:
        raise SatbenchError(f"kNN: the {what} contain NaN or inf in {bad} of {x.shape[0]} rows (first: row {first}); "
                            f"non-finite features cannot be ranked (check the weights, the input normalisation or bf16)")


def _available_host_bytes() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_block_bytes(device: torch.device | str = "cpu") -> int:
    """Default working-set budget of one search block: 1/8 of the host memory available now (at most 1 GiB) on CPU,
    1/4 of the free device memory (at most 4 GiB) on CUDA; never below 64 MiB."""
    dev = torch.device(device)
    if dev.type == "cuda":
        free, _ = torch.cuda.mem_get_info(dev)
        b = min(free // 4, 4 << 30)
    else:
        b = min(_available_host_bytes() // 8, 1 << 30)
    return int(max(b, 64 << 20))


def _total_order(v: torch.Tensor, ix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of (similarity, index) reordered by decreasing similarity, equal similarities by increasing index."""
    ix, p = ix.sort(dim=1)
    v = v.gather(1, p)
    v, p = v.sort(dim=1, descending=True, stable=True)
    return v, ix.gather(1, p)


def _topk_block(s: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``min(k, cols)`` of each row of a score block under the tie rule (lower column index first).

    ``topk(k + TIE_MARGIN)`` finds the candidates (ties among them are re-ordered); a row whose last candidate still
    equals its k-th value may have dropped a tied column with a lower index, so such rows (a run of more than
    ``TIE_MARGIN`` equal similarities across the k-th place: duplicated train rows) are re-selected with a stable sort
    of the whole row."""
    cols = s.shape[1]
    m = k + TIE_MARGIN
    if m >= cols:
        return s.sort(dim=1, descending=True, stable=True)
    v, ix = s.topk(m, dim=1, largest=True, sorted=True)
    v, ix = _total_order(v, ix)
    amb = (v[:, m - 1] == v[:, k - 1]).nonzero().flatten()
    v, ix = v[:, :k].contiguous(), ix[:, :k].contiguous()
    for a in range(0, amb.numel(), 256):
        r = amb[a:a + 256]
        sv, si = s[r].sort(dim=1, descending=True, stable=True)
        v[r], ix[r] = sv[:, :k], si[:, :k]
    return v, ix


def _merge(best: tuple[torch.Tensor, torch.Tensor], new: tuple[torch.Tensor, torch.Tensor],
           k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Running top-k merge; ``best`` holds only lower train indices than ``new`` and both follow the tie rule, so a
    stable sort of ``[best, new]`` keeps the rule."""
    v = torch.cat([best[0], new[0]], dim=1)
    ix = torch.cat([best[1], new[1]], dim=1)
    v, p = v.sort(dim=1, descending=True, stable=True)
    return v[:, :k].contiguous(), ix.gather(1, p[:, :k])


def _torch_train_block(n_train: int, q_rows: int, k: int, budget: int) -> int:
    """Train rows per block: all of them when the ``[q_rows, n_train]`` float32 score block fits ``budget`` (the
    unblocked computation itself), else the largest multiple of :data:`TORCH_TRAIN_ALIGN` that fits (at least one
    aligned block holding ``k`` rows)."""
    if q_rows * n_train * 4 <= budget:
        return n_train
    tb = (budget // (4 * max(1, q_rows))) // TORCH_TRAIN_ALIGN * TORCH_TRAIN_ALIGN
    tb = max(tb, TORCH_TRAIN_ALIGN * math.ceil(k / TORCH_TRAIN_ALIGN))
    return min(tb, n_train)


def _search_torch(train: torch.Tensor, query: torch.Tensor, k: int, dev: torch.device, chunk: int,
                  budget: int, info: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    x = train.to(dev, torch.float32)
    n_train, n = x.shape[0], query.shape[0]
    xt = x.t()
    q_rows = max(1, min(chunk, n))
    tb = _torch_train_block(n_train, q_rows, k, budget)
    info.update(query_block=q_rows, train_block=tb, blocks=math.ceil(n / q_rows) * math.ceil(n_train / tb),
                peak_block_bytes=q_rows * tb * 4)
    sims_out, idx_out = [], []
    for i in range(0, n, chunk):
        q = query[i:i + chunk].to(dev, torch.float32)
        if tb >= n_train:  # one block: exactly the unblocked computation
            best = _topk_block(q @ xt, k)
        else:
            best = None
            for j in range(0, n_train, tb):
                v, ix = _topk_block(q @ x[j:j + tb].t(), k)
                new = (v, ix.add_(j))
                best = new if best is None else _merge(best, new, k)
        sims_out.append(best[0])
        idx_out.append(best[1])
    if not sims_out:
        return torch.zeros(0, k), torch.zeros(0, k, dtype=torch.int64)
    return torch.cat(sims_out).cpu(), torch.cat(idx_out).cpu()


def _faiss_query_blocks(n: int, d: int, rows: int) -> list[tuple[int, int]]:
    """Query blocks whose edges fall on faiss's own BLAS query blocks (``distance_compute_blas_query_bs``), so every
    ``sgemm`` sees the same shapes as in one call; a last block that faiss would send down another code path (its
    sequential scan for ``nx * d < distance_compute_blas_threshold``, or its database-parallel path for fewer queries
    than threads) is merged into the block before it."""
    import faiss

    qbs = int(faiss.cvar.distance_compute_blas_query_bs)
    thr = int(faiss.cvar.distance_compute_blas_threshold)
    step = qbs * max(1, rows // qbs)
    if n <= step or step * d < thr:  # one call (or faiss would not use BLAS for blocks this small: no exact split)
        return [(0, n)] if n else []
    blocks = [(a, min(a + step, n)) for a in range(0, n, step)]
    tail = blocks[-1][1] - blocks[-1][0]
    if tail * d < thr or tail < max(2, torch.get_num_threads()):
        blocks[-2:] = [(blocks[-2][0], n)]
    return blocks


def _faiss_topk(xb: np.ndarray, xq: np.ndarray, k: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k of a query block under the tie rule from ``faiss.knn`` for ``m > k`` candidates, re-ordered by
    (similarity desc, index asc). faiss keeps an arbitrary subset of a tie, so a row whose m-th candidate still equals
    its k-th value is searched again with ``2m`` candidates -- in a call that gives it the very same similarities:
    its own ``distance_compute_blas_query_bs`` slice of this block (BLAS path), else the whole block."""
    import faiss

    n, d = xq.shape
    n_train = xb.shape[0]
    s, i = faiss.knn(xq, xb, m, metric=faiss.METRIC_INNER_PRODUCT)
    v, ix = _total_order(torch.from_numpy(s), torch.from_numpy(i))
    out_v, out_ix = v[:, :k].contiguous(), ix[:, :k].contiguous()
    if m >= n_train:
        return out_v, out_ix
    amb = (v[:, m - 1] == v[:, k - 1]).nonzero().flatten()
    if amb.numel() == 0:
        return out_v, out_ix
    qbs = int(faiss.cvar.distance_compute_blas_query_bs)
    thr = int(faiss.cvar.distance_compute_blas_threshold)
    nt = max(2, torch.get_num_threads())
    spans = sorted({(int(r) // qbs * qbs, min(int(r) // qbs * qbs + qbs, n)) for r in amb})
    if n * d < thr or any((b - a) * d < thr or b - a < nt for a, b in spans):
        spans = [(0, n)]  # the sequential scan (or a slice faiss would treat differently): redo the whole block
    for a, b in spans:
        sv, si = _faiss_topk(xb, xq[a:b], k, min(2 * m, n_train))
        rows = amb[(amb >= a) & (amb < b)]
        out_v[rows], out_ix[rows] = sv[rows - a], si[rows - a]
    return out_v, out_ix


def _search_faiss(train: torch.Tensor, query: torch.Tensor, k: int, budget: int,
                  info: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    import faiss

    faiss.omp_set_num_threads(max(1, torch.get_num_threads()))
    xb = np.ascontiguousarray(train.detach().cpu().numpy(), dtype=np.float32)  # no copy for a CPU float32 tensor
    xq = np.ascontiguousarray(query.detach().cpu().numpy(), dtype=np.float32)
    n, d = xq.shape
    m = min(k + TIE_MARGIN, xb.shape[0])
    # per query row: faiss's [m] float32 + int64 results, and the re-ordering's few copies of them
    per_row = 48 * m
    blocks = _faiss_query_blocks(n, d, max(1, budget // per_row))
    info.update(query_block=max((b - a for a, b in blocks), default=0), train_block=xb.shape[0], blocks=len(blocks),
                peak_block_bytes=per_row * max((b - a for a, b in blocks), default=0))
    sims = torch.empty(n, k, dtype=torch.float32)
    idx = torch.empty(n, k, dtype=torch.int64)
    for a, b in blocks:
        sims[a:b], idx[a:b] = _faiss_topk(xb, xq[a:b], k, m)
    return sims, idx


def knn_search(train: torch.Tensor, query: torch.Tensor, k: int, *, backend: str = "faiss",
               device: Optional[torch.device] = None, chunk: int = 1024, max_block_bytes: Optional[int] = None,
               info: Optional[dict[str, Any]] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-``k`` inner-product neighbours of each query row among ``train`` rows (both L2-normalised, float32).

    Returns ``(similarities [n, k], indices [n, k])`` on the CPU, sorted by decreasing similarity, equal similarities
    by increasing train index (and a tie at the k-th place keeps the lower indices), on both backends.
    ``backend="faiss"``: ``faiss.knn`` (the computation of ``IndexFlatIP.search``, without copying ``train`` into an
    index) in query blocks, ``omp_set_num_threads(torch.get_num_threads())``;
    ``backend="torch"``: query chunks of ``chunk`` rows x train blocks, ``Q @ X.T`` + ``topk`` with a running merge on
    ``device`` (default: the device ``train`` lives on; nothing goes to the host before the ``[n, k]`` results).
    ``max_block_bytes`` bounds one block's working set (torch: the float32 score block; faiss: the per-block results);
    default :func:`default_block_bytes`. The blocking never changes the results. ``info``, if given, receives the plan.
    """
    if train.ndim != 2 or query.ndim != 2 or train.shape[1] != query.shape[1]:
        raise SatbenchError(f"kNN search needs [n, D] train and query features of one width, got "
                            f"{tuple(train.shape)} and {tuple(query.shape)}")
    n_train = train.shape[0]
    if not 0 < k <= n_train:
        raise ProtocolError(f"k = {k} needs at least {k} training images, the split has {n_train}")
    if max_block_bytes is not None and not (isinstance(max_block_bytes, int) and max_block_bytes > 0):
        raise SatbenchError(f"kNN search: max_block_bytes must be a positive integer, got {max_block_bytes!r}")
    _check_finite(train, "train features")
    _check_finite(query, "query features")
    info = {} if info is None else info
    if backend == "faiss":
        budget = max_block_bytes or default_block_bytes("cpu")
        info.update(backend="faiss", block_bytes=budget)
        return _search_faiss(train, query, k, budget, info)
    if backend == "torch":
        dev = torch.device(device) if device is not None else train.device
        budget = max_block_bytes or default_block_bytes(dev)
        info.update(backend="torch", device=str(dev), block_bytes=budget)
        return _search_torch(train, query, k, dev, chunk, budget, info)
    raise SatbenchError(f"unknown kNN backend {backend!r}")


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
    auto = knn_vote_form(sims, k, temperature)
    if form is None:
        form = auto
    elif form not in VOTE_FORMS:
        raise SatbenchError(f"kNN vote form must be one of {', '.join(VOTE_FORMS)}, got {form!r}")
    elif form == "official" and auto != "official":
        raise SatbenchError(f"kNN vote: exp(sim / T) overflows or underflows float32 at T = {temperature} "
                            f"(k = {k}); the official arithmetic cannot be used here")
    preds = []
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
    return (torch.cat(preds) if preds else torch.zeros(0, num_classes, dtype=torch.int64)), form


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
    top1, top5, vote, pred, hit5 = {}, {}, {}, {}, {}
    for k in ks:
        ranking, vote[k] = knn_vote_with_form(sims, idx, ytr, num_classes, k, temperature)
        top1[k], top5[k] = topk_accuracy(ranking, yte, k)
        pred[k], hit5[k] = per_image_predictions(ranking, yte, k)
    return KnnResult(top1, top5, vote, info, pred, hit5)


def per_image_predictions(ranking: torch.Tensor, targets: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(top-1 class int64 ``[n]``, top-5 hit bool ``[n]``) of a class ranking: the per-image terms whose means are
    :func:`topk_accuracy` (top-5 over ``min(5, k)`` columns, as DINO)."""
    correct = ranking.eq(targets.view(-1, 1))
    hit5 = correct[:, :min(5, k, ranking.shape[1])].any(dim=1)
    return ranking[:, 0].to(torch.int64).numpy().copy(), hit5.numpy().copy()


def _ks(protocol: Protocol) -> tuple[list[int], int]:
    ks = protocol.get("k")
    if not isinstance(ks, list) or not ks or not all(isinstance(k, int) and k > 0 for k in ks):
        raise ProtocolError(f"protocol {protocol.name}: k must be a non-empty list of positive integers, got {ks!r}")
    report = protocol.get("k_report", ks[0])
    if report not in ks:
        raise ProtocolError(f"protocol {protocol.name}: k_report {report} is not one of k {ks}")
    return list(ks), int(report)


def clip_ks(ks: Sequence[int], k_report: int, n_train: int) -> Optional[tuple[list[int], int]]:
    """The k list and reported k clipped to a training set of ``n_train`` images (None when nothing needs clipping)."""
    if max(ks) <= n_train:
        return None
    return sorted({min(int(k), n_train) for k in ks}), min(int(k_report), n_train)


def run_knn(loaded: LoadedModel, dataset: SceneDataset, protocol: Protocol, *, device: str = "auto", bf16: bool = False,
            batch_size: int = 64, cache: Optional[FeatureCache] = None, progress: bool = True, backend: str = "auto",
            normalization: Optional[Normalization] = None, num_workers: int = 1,
            search_block_bytes: Optional[int] = None, dist: Any = None, statistics: Any = None,
            train_subsets: Sequence[Any] = ()) -> Any:
    """Evaluate ``loaded`` on ``dataset`` with a kNN ``protocol``; returns a full result record (not written).

    Under torchrun (``dist`` with several processes) every rank extracts a shard of each split and view
    (:func:`satbench.eval.extract.extract_views`); rank 0 runs the search and returns the one record (with the world
    size that did the work); the other ranks return None.

    Every record keeps its per-image predictions (top-1 of every scale entry and k; sidecar written with the record)
    and their bootstrap intervals (``statistics``: a :class:`satbench.stats.attach.StatsOptions`, default 10,000
    resamples), computed from the classification already done.

    ``train_subsets`` (:class:`satbench.stats.fractions.Subset`): classify with each subset of the train split instead
    and return one record per subset (a list), from ONE extraction of the full split (the first record carries the
    extraction; the others say they shared it). A k larger than a subset is clipped to it (recorded).

    ``normalization`` overrides the protocol's rule (``--normalization``). ``search_block_bytes`` bounds one block of
    the neighbour search (:func:`knn_search`; results do not depend on it). Every error (bad protocol, missing split
    entry, k larger than the train split, input_res on a backbone without it) is raised before any record exists.
    """
    from satbench.stats.attach import StatsOptions

    if protocol.task != "knn":
        raise ProtocolError(f"protocol {protocol.name} is for task {protocol.task!r}, not 'knn'")
    ks, k_report = _ks(protocol)
    raw_t = protocol.get("temperature", 0.07)
    try:
        temperature = float(raw_t)
    except (TypeError, ValueError):
        temperature = math.nan
    if isinstance(raw_t, bool) or not (math.isfinite(temperature) and temperature > 0):
        raise ProtocolError(f"protocol {protocol.name}: temperature must be a finite number > 0, got {raw_t!r}")
    if protocol.get("metric", "cosine") != "cosine" or not protocol.get("l2_normalize", True):
        raise ProtocolError(f"protocol {protocol.name}: only cosine similarity on L2-normalised features is implemented")
    if protocol.get("feature", "cls") != "cls":
        raise ProtocolError(f"protocol {protocol.name}: only the final-norm CLS feature is implemented")
    entries = build_scale_entries(protocol, dataset, loaded)
    norm = protocol_normalization(protocol, dataset, normalization)
    train_s, val_s = dataset.samples("train"), dataset.samples("val")
    if max(ks) > len(train_s):
        raise ProtocolError(f"k = {max(ks)} needs at least {max(ks)} training images; {dataset.name} train has {len(train_s)}")
    if not val_s:
        raise SatbenchError(f"dataset {dataset.name}: the val split is empty")
    stats_opts = statistics if statistics is not None else StatsOptions()
    extractor = FeatureExtractor(loaded, normalization=norm, device=device, bf16=bf16)
    used_backend = resolve_backend(backend, extractor.device)
    views = list({e.view.key: e.view for e in entries}.values())

    stats = ExtractStats()
    t0 = time.perf_counter()
    hits0, misses0 = (cache.hits, cache.misses) if cache is not None else (0, 0)
    # Each image is decoded once for all scales (per split: cache keys carry the split hash).
    feats = {}
    for split, samples in (("train", train_s), ("val", val_s)):
        feats[split] = extract_views(extractor, samples, views, split_sha256=dataset.splits[split].sha256, cache=cache,
                                     batch_size=batch_size, num_workers=num_workers, progress=progress,
                                     desc=f"{dataset.name} {split}", stats=stats, dist=dist)
    t_extract = time.perf_counter() - t0
    world = dist.world_size if dist is not None else 1
    if dist is not None and not dist.is_main:
        return None  # rank 0 searches and writes the one record

    extraction = {"stats": stats.as_dict(), "seconds": t_extract,
                  "cache": {"enabled": cache is not None and cache.enabled,
                            "hits": (cache.hits - hits0) if cache is not None else 0,
                            "misses": (cache.misses - misses0) if cache is not None else 0}}
    common = dict(loaded=loaded, dataset=dataset, entries=entries, views=views, feats=feats, norm=norm,
                  temperature=temperature, extractor=extractor, used_backend=used_backend, batch_size=batch_size,
                  search_block_bytes=search_block_bytes, world=world, stats_opts=stats_opts)
    if not train_subsets:
        return _knn_record(protocol=protocol, ks=ks, k_report=k_report, train_idx=None, extraction=extraction,
                           **common)
    records = []
    for sub in train_subsets:
        proto, kk, kr, clipped = protocol, ks, k_report, None
        c = clip_ks(ks, k_report, len(sub.indices))
        if c is not None:
            kk, kr = c
            clipped = {"requested": list(ks), "used": kk, "n_train": int(len(sub.indices))}
            proto = protocol.with_overrides(k=kk, k_report=kr)
        shared = None
        if records:  # the features were extracted once, for the first subset's record
            shared = {"stats": {**{k: v for k, v in extraction["stats"].items() if k in ("cache_identity",)},
                                "cached_views": [], "computed_views": [], "images_decoded": 0, "forward_images": 0,
                                "seconds": 0.0, "shared_with_record": records[0]["id"]},
                      "seconds": 0.0, "cache": {"enabled": extraction["cache"]["enabled"], "hits": 0, "misses": 0}}
        rec = _knn_record(protocol=proto, ks=kk, k_report=kr, train_idx=np.asarray(sub.indices),
                          extraction=shared or extraction, **common)
        rec["dataset"]["train_subset"] = sub.as_record()
        if clipped is not None:
            rec["metrics"]["k_clipped"] = clipped
        records.append(rec)
    return records


def _knn_record(*, loaded: LoadedModel, dataset: SceneDataset, protocol: Protocol, entries: list[ScaleEntry],
                views: list[Any], feats: dict[str, dict[str, Any]], norm: Normalization, temperature: float,
                extractor: FeatureExtractor, used_backend: str, batch_size: int, search_block_bytes: Optional[int],
                world: int, stats_opts: Any, ks: list[int], k_report: int, train_idx: Optional[np.ndarray],
                extraction: dict[str, Any]) -> Any:
    """Search, vote and the record of one training set (the full split, or the positions ``train_idx`` of it)."""
    from satbench.stats.fields import knn_fields
    from satbench.stats.attach import attach

    train_s, val_s = dataset.samples("train"), dataset.samples("val")
    t1 = time.perf_counter()
    ytr = [s.label for s in train_s]
    yte = [s.label for s in val_s]
    if train_idx is not None:
        ytr = [ytr[i] for i in train_idx.tolist()]
    num_classes = len(dataset.classes)
    by_view: dict[str, KnnResult] = {}
    for v in views:
        xtr = feats["train"][v.key] if train_idx is None else feats["train"][v.key][train_idx]
        by_view[v.key] = knn_classify(xtr, ytr, feats["val"][v.key], yte, ks, temperature,
                                      num_classes, backend=used_backend, device=extractor.device,
                                      max_block_bytes=search_block_bytes)
    t_search = time.perf_counter() - t1

    per_scale = []
    for e in entries:
        r = by_view[e.view.key]
        per_scale.append({**e.as_dict(), "k": {str(k): {"top1": r.top1[k], "top5": r.top5[k]} for k in ks}})
    average = {str(k): {"top1": float(np.mean([by_view[e.view.key].top1[k] for e in entries])),
                        "top5": float(np.mean([by_view[e.view.key].top5[k] for e in entries]))} for k in ks}
    ds_key = dataset.info.name if dataset.info is not None else dataset.name
    official = {ds_key: {**{e.key: [by_view[e.view.key].top1[k] for k in ks] for e in entries},
                         "average": [average[str(k)]["top1"] for k in ks]}}
    metrics = {"k": ks, "k_report": k_report, "temperature": temperature, "per_scale": per_scale, "average": average,
               "official_format": official, "n_train": len(ytr), "n_val": len(val_s), "num_classes": num_classes}
    summary = {"top1_avg": average[str(k_report)]["top1"], "top5_avg": average[str(k_report)]["top5"],
               "top1_per_scale": {str(e.scale): by_view[e.view.key].top1[k_report] for e in entries},
               "k": k_report}
    extra = {"backend": used_backend, "extraction": extraction["stats"], "cache": extraction["cache"],
             "batch_size": batch_size, "scale_entries": [e.as_dict() for e in entries], "world_size": world}
    forms = {e.key: {str(k): by_view[e.view.key].vote[k] for k in ks} for e in entries}
    used = sorted({f for per in forms.values() for f in per.values()})
    extra["vote"] = used[0] if len(used) == 1 else "mixed"  # "official" (DINO's exp(sim/T)) or "shifted"
    if len(used) > 1:
        extra["vote_forms"] = forms
    extra["search"] = next(iter(by_view.values())).search
    if used_backend == "faiss":
        import faiss

        extra["faiss_version"] = faiss.__version__
    ds = dataset.describe()
    ds["normalization_used"] = norm.as_dict()
    t_extract = extraction["seconds"]
    record = make_record(task="knn", model=loaded.card.name, weights=loaded.weights.as_dict(),
                         protocol=protocol.as_record(), dataset=ds, metrics=metrics, summary=summary,
                         extractor=extractor.describe(),
                         timings={"extract_s": round(t_extract, 3), "search_s": round(t_search, 3),
                                  "total_s": round(t_extract + t_search, 3)},
                         extra=extra, device=extractor.device)
    # per-image predictions of every (scale entry, k) and their intervals, from the classification above
    t2 = time.perf_counter()
    scales = [float(e.scale) for e in entries]
    if len(set(scales)) == len(scales):
        preds = {(float(e.scale), k): by_view[e.view.key].pred[k] for e in entries for k in ks}
        hit5 = {(float(e.scale), k_report): by_view[e.view.key].top5_hit[k_report] for e in entries}
        fields = knn_fields(np.asarray(yte, dtype=np.int64), preds, k_report=k_report,
                            split_sha256=dataset.splits["val"].sha256, num_classes=num_classes, top5_correct=hit5,
                            **stats_opts.kwargs())
        attach(record, fields)
    else:  # two entries of one scale cannot be told apart in the sidecar (no shipped protocol does this)
        record["metrics"]["statistics"] = {"error": f"statistics left out: scale entries repeat a scale {scales}"}
    record["timings"]["statistics_s"] = round(time.perf_counter() - t2, 3)
    return record
