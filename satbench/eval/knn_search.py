"""Neighbour search of the multi-scale kNN (spec 3.3): FAISS on CPU, exact torch top-k on GPU, in bounded memory.

The torch path runs query chunks x train blocks with a running top-k merge on the device the features live on; the
faiss path searches query blocks with ``faiss.knn`` (no copy of the train matrix into an index). Block edges are
aligned so that every similarity is computed by the same BLAS call shape as in the unblocked search, so blocked and
unblocked searches return identical similarities and neighbours. Tie rule (both backends, blocked or not): neighbours
are ordered by decreasing similarity, equal similarities by increasing train index, and a tie at the k-th place keeps
the lower train indices. :func:`knn_search` returns the same neighbours on both backends (pinned by a test).
"""

from __future__ import annotations

import math
import os
from typing import Any, Optional

import numpy as np
import torch

from satbench.errors import ProtocolError, SatbenchError

BACKENDS = ("auto", "faiss", "torch")

#: Train-block edges of the torch search sit on multiples of this, so that each similarity comes out of the same
#: matmul micro-kernel position as in the unblocked ``Q @ X.T`` (checked bit for bit on MKL; small or odd blocks differ).
TORCH_TRAIN_ALIGN = 1024
#: Candidates searched beyond k: a tie straddling the k-th place is settled without a second search unless more than
#: this many neighbours share the k-th similarity.
TIE_MARGIN = 16
_ROWS_PER_CHECK = 65536


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
