"""Multi-scale weighted kNN, exactly as SatDINO evaluates (spec 3.3), with FAISS on CPU and exact torch top-k on GPU.

Pipeline of :func:`run_knn`: protocol -> per-scale views (:mod:`satbench.eval.knn_protocols`) -> one decode per image for
all scales, batched by size, features cached (:func:`satbench.eval.extract.extract_views`) -> L2-normalised CLS ->
one neighbour search per scale with ``k_max = max(k)`` -> every k from that search -> DINO's ``knn_classifier`` vote
(one-hot labels x ``exp(sim / T)`` summed per class, ``sort`` descending, top-1 and top-5) -> a result record.

The vote is always computed in torch with DINO's exact formulation, whatever backend found the neighbours, so only the
neighbour search differs between backends; :func:`knn_search` returns the same neighbours on both (pinned by a test).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..cache import FeatureCache
from ..data.scene import SceneDataset
from ..errors import ProtocolError, SatbenchError
from ..features import FeatureExtractor
from ..normalization import Normalization
from ..protocols import Protocol
from ..results import make_record
from ..weights import LoadedModel
from .extract import ExtractStats, extract_views
from .knn_protocols import ScaleEntry, build_scale_entries, protocol_normalization

BACKENDS = ("auto", "faiss", "torch")


@dataclass
class KnnResult:
    """Top-1 and top-5 (%) for each k of one scale."""

    top1: dict[int, float]
    top5: dict[int, float]


def l2_normalize(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Row-wise L2 normalisation in float32 (``nn.functional.normalize(x, dim=1, p=2)``, as the official code)."""
    t = torch.as_tensor(x, dtype=torch.float32)
    return torch.nn.functional.normalize(t, dim=1, p=2)


def resolve_backend(backend: str, device: torch.device) -> str:
    """``auto`` -> ``faiss`` on CPU (faiss-cpu), ``torch`` on CUDA (exact chunked matmul + topk)."""
    if backend not in BACKENDS:
        raise SatbenchError(f"kNN backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        return "torch" if device.type == "cuda" else "faiss"
    return backend


def knn_search(train: torch.Tensor, query: torch.Tensor, k: int, *, backend: str = "faiss",
               device: Optional[torch.device] = None, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` inner-product neighbours of each query row among ``train`` rows (both L2-normalised, float32).

    Returns ``(similarities [n, k], indices [n, k])`` on the CPU, sorted by decreasing similarity.
    ``backend="faiss"``: ``faiss.IndexFlatIP`` (exact) with ``omp_set_num_threads(torch.get_num_threads())``;
    ``backend="torch"``: chunked ``Q @ X.T`` + ``topk(sorted=True)`` on ``device`` (the official computation).
    """
    n_train = train.shape[0]
    if not 0 < k <= n_train:
        raise ProtocolError(f"k = {k} needs at least {k} training images, the split has {n_train}")
    if backend == "faiss":
        import faiss

        faiss.omp_set_num_threads(max(1, torch.get_num_threads()))
        index = faiss.IndexFlatIP(train.shape[1])
        index.add(np.ascontiguousarray(train.cpu().numpy(), dtype=np.float32))
        sims, idx = index.search(np.ascontiguousarray(query.cpu().numpy(), dtype=np.float32), k)
        return torch.from_numpy(sims), torch.from_numpy(idx.astype(np.int64))
    if backend == "torch":
        dev = device or torch.device("cpu")
        xt = train.to(dev).t()
        sims_out, idx_out = [], []
        for i in range(0, query.shape[0], chunk):
            s = query[i:i + chunk].to(dev) @ xt
            v, j = s.topk(k, dim=1, largest=True, sorted=True)
            sims_out.append(v.cpu())
            idx_out.append(j.cpu())
        if not sims_out:
            return torch.zeros(0, k), torch.zeros(0, k, dtype=torch.int64)
        return torch.cat(sims_out), torch.cat(idx_out)
    raise SatbenchError(f"unknown kNN backend {backend!r}")


def knn_vote(sims: torch.Tensor, indices: torch.Tensor, train_labels: torch.Tensor, num_classes: int, k: int,
             temperature: float, chunk: int = 1024) -> torch.Tensor:
    """Class ranking ``[n, C]`` (best first) from the first ``k`` neighbours, as DINO's ``knn_classifier``:
    one-hot(neighbour labels) x ``exp(sim / T)`` summed over neighbours, then ``sort(descending)``."""
    preds = []
    for i in range(0, sims.shape[0], chunk):
        d = sims[i:i + chunk, :k]
        j = indices[i:i + chunk, :k]
        b = d.shape[0]
        retrieved = torch.gather(train_labels.view(1, -1).expand(b, -1), 1, j)
        one_hot = torch.zeros(b * k, num_classes)
        one_hot.scatter_(1, retrieved.reshape(-1, 1), 1)
        weights = d.clone().div_(temperature).exp_()
        probs = torch.sum(torch.mul(one_hot.view(b, -1, num_classes), weights.view(b, -1, 1)), 1)
        _, order = probs.sort(1, True)
        preds.append(order)
    return torch.cat(preds) if preds else torch.zeros(0, num_classes, dtype=torch.int64)


def topk_accuracy(ranking: torch.Tensor, targets: torch.Tensor, k: int) -> tuple[float, float]:
    """Top-1 and top-5 accuracy (%) of a class ranking; top-5 uses ``min(5, k)`` columns as DINO does."""
    correct = ranking.eq(targets.view(-1, 1))
    n = max(1, targets.shape[0])
    top1 = correct[:, :1].sum().item() * 100.0 / n
    top5 = correct[:, :min(5, k, ranking.shape[1])].sum().item() * 100.0 / n
    return top1, top5


def knn_classify(train_feats: np.ndarray | torch.Tensor, train_labels: Sequence[int], test_feats: np.ndarray | torch.Tensor,
                 test_labels: Sequence[int], ks: Sequence[int], temperature: float, num_classes: int, *,
                 backend: str = "faiss", device: Optional[torch.device] = None) -> KnnResult:
    """Weighted kNN top-1/top-5 for every k in ``ks`` from ONE search with ``k_max = max(ks)``."""
    x = l2_normalize(train_feats)
    q = l2_normalize(test_feats)
    ytr = torch.as_tensor(list(train_labels), dtype=torch.int64)
    yte = torch.as_tensor(list(test_labels), dtype=torch.int64)
    sims, idx = knn_search(x, q, max(ks), backend=backend, device=device)
    top1, top5 = {}, {}
    for k in ks:
        ranking = knn_vote(sims, idx, ytr, num_classes, k, temperature)
        top1[k], top5[k] = topk_accuracy(ranking, yte, k)
    return KnnResult(top1, top5)


def _ks(protocol: Protocol) -> tuple[list[int], int]:
    ks = protocol.get("k")
    if not isinstance(ks, list) or not ks or not all(isinstance(k, int) and k > 0 for k in ks):
        raise ProtocolError(f"protocol {protocol.name}: k must be a non-empty list of positive integers, got {ks!r}")
    report = protocol.get("k_report", ks[0])
    if report not in ks:
        raise ProtocolError(f"protocol {protocol.name}: k_report {report} is not one of k {ks}")
    return list(ks), int(report)


def run_knn(loaded: LoadedModel, dataset: SceneDataset, protocol: Protocol, *, device: str = "auto", bf16: bool = False,
            batch_size: int = 64, cache: Optional[FeatureCache] = None, progress: bool = True, backend: str = "auto",
            normalization: Optional[Normalization] = None, num_workers: int = 1) -> dict[str, Any]:
    """Evaluate ``loaded`` on ``dataset`` with a kNN ``protocol``; returns a full result record (not written).

    ``normalization`` overrides the protocol's rule (``--normalization``). Every error (bad protocol, missing split
    entry, k larger than the train split, input_res on a backbone without it) is raised before any record exists.
    """
    if protocol.task != "knn":
        raise ProtocolError(f"protocol {protocol.name} is for task {protocol.task!r}, not 'knn'")
    ks, k_report = _ks(protocol)
    temperature = float(protocol.get("temperature", 0.07))
    if not temperature > 0:
        raise ProtocolError(f"protocol {protocol.name}: temperature must be positive, got {temperature}")
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
                                     desc=f"{dataset.name} {split}", stats=stats)
    t_extract = time.perf_counter() - t0

    t1 = time.perf_counter()
    ytr = [s.label for s in train_s]
    yte = [s.label for s in val_s]
    num_classes = len(dataset.classes)
    by_view: dict[str, KnnResult] = {}
    for v in views:
        by_view[v.key] = knn_classify(feats["train"][v.key], ytr, feats["val"][v.key], yte, ks, temperature,
                                      num_classes, backend=used_backend, device=extractor.device)
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
               "official_format": official, "n_train": len(train_s), "n_val": len(val_s), "num_classes": num_classes}
    summary = {"top1_avg": average[str(k_report)]["top1"], "top5_avg": average[str(k_report)]["top5"],
               "top1_per_scale": {str(e.scale): by_view[e.view.key].top1[k_report] for e in entries},
               "k": k_report}
    extra = {"backend": used_backend, "extraction": stats.as_dict(),
             "cache": {"enabled": cache is not None and cache.enabled,
                       "hits": (cache.hits - hits0) if cache is not None else 0,
                       "misses": (cache.misses - misses0) if cache is not None else 0},
             "batch_size": batch_size, "scale_entries": [e.as_dict() for e in entries]}
    if used_backend == "faiss":
        import faiss

        extra["faiss_version"] = faiss.__version__
    ds = dataset.describe()
    ds["normalization_used"] = norm.as_dict()
    return make_record(task="knn", model=loaded.card.name, weights=loaded.weights.as_dict(), protocol=protocol.as_record(),
                       dataset=ds, metrics=metrics, summary=summary, extractor=extractor.describe(),
                       timings={"extract_s": round(t_extract, 3), "search_s": round(t_search, 3),
                                "total_s": round(t_extract + t_search, 3)},
                       extra=extra, device=extractor.device)
