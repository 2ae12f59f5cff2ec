"""The kNN engine over a dataset: protocol settings -> per-scale views -> one extraction -> search and vote per view.

:func:`evaluate_knn` runs SatDINO's multi-scale weighted kNN (spec 3.3) and returns what it computed, one
:class:`KnnRun` per training set (the full train split, or each subset of it); it builds no record. The task
(:mod:`satbench.eval.task_knn`) turns a run into the result record. Pipeline: typed settings (parsed once, by the
caller or here) -> per-scale views (:mod:`satbench.eval.knn_protocols`) -> one decode per image for all scales, batched
by size, features cached (:func:`satbench.eval.extract.extract_views`) -> L2-normalised CLS -> one neighbour search
per view with ``k_max = max(k)`` (:mod:`satbench.eval.knn_search`) -> every k from that search, DINO's vote
(:mod:`satbench.eval.knn_vote`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from satbench.config.protocols import Protocol
from satbench.data.normalization import Normalization
from satbench.data.scene import Sample, SceneDataset
from satbench.errors import ProtocolError, SatbenchError
from satbench.eval.cache import FeatureCache
from satbench.eval.extract import ExtractStats, View, extract_views
from satbench.eval.feature_guard import check_arrays
from satbench.eval.knn_protocols import ScaleEntry, build_scale_entries, protocol_normalization
from satbench.eval.knn_search import resolve_backend
from satbench.eval.knn_settings import KnnSettings
from satbench.eval.knn_vote import KnnResult, knn_classify
from satbench.models.features import FeatureExtractor
from satbench.models.weights import LoadedModel


def clip_ks(ks: Sequence[int], k_report: int, n_train: int) -> Optional[tuple[list[int], int]]:
    """The k list and reported k clipped to a training set of ``n_train`` images (None when nothing needs clipping)."""
    if max(ks) <= n_train:
        return None
    return sorted({min(int(k), n_train) for k in ks}), min(int(k_report), n_train)


@dataclass
class KnnRun:
    """What the engine computed for one training set: the effective protocol and settings (k clipped to a subset
    when it is smaller than a k, ``k_clipped`` then says so), the scale entries and their views, the normalisation,
    the extraction (stats, seconds, cache; the first run of several carries it, the others say they shared it), and
    the :class:`~satbench.eval.knn_vote.KnnResult` of every view."""

    protocol: Protocol
    settings: KnnSettings
    entries: list[ScaleEntry]
    views: list[View]
    norm: Normalization
    extractor: FeatureExtractor
    backend: str
    by_view: dict[str, KnnResult]
    val_labels: np.ndarray
    n_train: int
    extraction: dict[str, Any]
    search_s: float
    world_size: int
    batch_size: int
    train_subset: Any = None
    k_clipped: Optional[dict[str, Any]] = None
    #: the record's ``features`` section (:func:`satbench.eval.feature_guard.check_arrays`: the val features' check
    #: and fingerprint per view)
    features: Optional[dict[str, Any]] = None
    #: ``--corruptions``: the plan, the corrupted val features' account, and per (type, severity) the top-1
    #: predictions at the reported k of every view (val order)
    corruption_plan: Any = None
    corrupted_extraction: Any = None
    corrupted_pred: Optional[dict[tuple[str, int], dict[str, np.ndarray]]] = None
    corruption_search_s: float = 0.0


def _features(extractor: FeatureExtractor, dataset: SceneDataset, samples: dict[str, list[Sample]], views: list[View], *,
              cache: Optional[FeatureCache], batch_size: int, num_workers: int, progress: bool,
              dist: Any) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Features of every split and view (each image decoded once for all scales) and the extraction's account."""
    stats = ExtractStats()
    t0 = time.perf_counter()
    hits0, misses0 = (cache.hits, cache.misses) if cache is not None else (0, 0)
    feats = {split: extract_views(extractor, samples[split], views, split_sha256=dataset.splits[split].sha256,
                                  cache=cache, batch_size=batch_size, num_workers=num_workers, progress=progress,
                                  desc=f"{dataset.name} {split}", stats=stats, dist=dist)
             for split in samples}
    extraction = {"stats": stats.as_dict(), "seconds": time.perf_counter() - t0,
                  "cache": {"enabled": cache is not None and cache.enabled,
                            "hits": (cache.hits - hits0) if cache is not None else 0,
                            "misses": (cache.misses - misses0) if cache is not None else 0}}
    return feats, extraction


def _shared(extraction: dict[str, Any], first_id: Optional[str]) -> dict[str, Any]:
    """The extraction account of a run that reused the first run's features."""
    stats = {**{k: v for k, v in extraction["stats"].items() if k in ("cache_identity",)}, "cached_views": [],
             "computed_views": [], "images_decoded": 0, "forward_images": 0, "seconds": 0.0,
             "shared_with_record": first_id}
    return {"stats": stats, "seconds": 0.0, "cache": {"enabled": extraction["cache"]["enabled"], "hits": 0, "misses": 0}}


def eval_split(dataset: Any) -> str:
    """The split a kNN run reports: ``val`` for SatDINO's splits, ``test`` for a family with a test split (TorchGeo's:
    neighbours from train, val held out for what needs a validation split)."""
    return str(getattr(dataset, "eval_split", "val"))


def evaluate_knn(loaded: LoadedModel, dataset: SceneDataset, protocol: Protocol, *,
                 settings: Optional[KnnSettings] = None, device: str = "auto", bf16: bool = False,
                 batch_size: int = 64, cache: Optional[FeatureCache] = None, progress: bool = True,
                 backend: str = "auto", normalization: Optional[Normalization] = None, num_workers: int = 1,
                 search_block_bytes: Optional[int] = None, dist: Any = None,
                 train_subsets: Sequence[Any] = (), allow_collapsed_features: bool = False,
                 corruptions: Any = None) -> Optional[list[KnnRun]]:
    """Evaluate ``loaded`` on ``dataset`` with a kNN ``protocol``: one :class:`KnnRun` per training set (the full split,
    or each of ``train_subsets``, classified from ONE extraction of the full split).

    Under torchrun (``dist`` with several processes) every rank extracts a shard of each split and view; rank 0
    searches and gets the runs, the other ranks get None. ``normalization`` overrides the protocol's rule
    (``--normalization``); ``search_block_bytes`` bounds one block of the neighbour search (results do not depend on
    it). The val features of every view are checked (:mod:`satbench.eval.feature_guard`: NaN / inf, in any split, and
    collapse fail in one line, a collapse is recorded instead with ``allow_collapsed_features``) before any search.
    it). ``corruptions`` (a :class:`satbench.eval.corruption_eval.CorruptionPlan`, full train split only): the val
    split is also extracted under every (type, severity) and classified against the clean train features at the
    reported k (:mod:`satbench.eval.corruption_eval`). Every error (bad protocol, missing split entry, k larger than
    the train split, input_res on a backbone without it, an input size the backbone cannot take) is raised before any image is decoded.
    """
    if protocol.task != "knn":
        raise ProtocolError(f"protocol {protocol.name} is for task {protocol.task!r}, not 'knn'")
    st = settings if settings is not None else protocol.settings(KnnSettings)
    entries = build_scale_entries(protocol, dataset, loaded, settings=st)
    norm = protocol_normalization(protocol, dataset, normalization, settings=st)
    report = eval_split(dataset)
    samples = {"train": dataset.samples("train"), report: dataset.samples(report)}
    if max(st.k) > len(samples["train"]):
        raise ProtocolError(f"k = {max(st.k)} needs at least {max(st.k)} training images; {dataset.name} train has "
                            f"{len(samples['train'])}")
    if not samples[report]:
        raise SatbenchError(f"dataset {dataset.name}: the {report} split is empty")
    extractor = FeatureExtractor(loaded, normalization=norm, device=device, bf16=bf16)
    used_backend = resolve_backend(backend, extractor.device)
    views = list({e.view.key: e.view for e in entries}.values())
    feats, extraction = _features(extractor, dataset, samples, views, cache=cache, batch_size=batch_size,
                                  num_workers=num_workers, progress=progress, dist=dist)
    corrupted = None
    if corruptions is not None:
        if train_subsets:
            raise SatbenchError("--corruptions and train subsets cannot be combined in one run")
        from satbench.eval.corruption_eval import extract_corrupted

        corrupted = extract_corrupted(extractor, samples[report], views, corruptions,
                                      split_sha256=dataset.splits[report].sha256, cache=cache, batch_size=batch_size,
                                      num_workers=num_workers, progress=progress, dist=dist,
                                      desc=f"{dataset.name} {report}")
    world = dist.world_size if dist is not None else 1
    if dist is not None and not dist.is_main:
        return None  # rank 0 searches
    features = check_arrays({v.key: feats[report][v.key] for v in views}, f"{loaded.card.name} on {dataset.name}",
                            split_sha256=dataset.splits[report].sha256,
                            views={v.key: {"spec": v.spec, "input_res": v.input_res} for v in views},
                            others={f"train features, view {v.key}": feats["train"][v.key] for v in views},
                            allow_collapsed=allow_collapsed_features)
    ytr_all = np.asarray([s.label for s in samples["train"]], dtype=np.int64)
    yte = np.asarray([s.label for s in samples[report]], dtype=np.int64)
    num_classes = len(dataset.classes)

    def one(proto: Protocol, run_st: KnnSettings, train_idx: Optional[np.ndarray], extraction_of: dict[str, Any],
            subset: Any = None, clipped: Optional[dict[str, Any]] = None) -> KnnRun:
        t1 = time.perf_counter()
        ytr = ytr_all if train_idx is None else ytr_all[train_idx]
        by_view = {}
        for v in views:
            xtr = feats["train"][v.key] if train_idx is None else feats["train"][v.key][train_idx]
            by_view[v.key] = knn_classify(xtr, ytr.tolist(), feats[report][v.key], yte.tolist(), list(run_st.k),
                                          run_st.temperature, num_classes, backend=used_backend,
                                          device=extractor.device, max_block_bytes=search_block_bytes)
        return KnnRun(proto, run_st, entries, views, norm, extractor, used_backend, by_view, yte, int(len(ytr)),
                      extraction_of, time.perf_counter() - t1, world, batch_size, subset, clipped, features)

    if not train_subsets:
        run = one(protocol, st, None, extraction)
        if corrupted is not None:
            t2 = time.perf_counter()
            run.corruption_plan, run.corrupted_extraction, run.corrupted_pred = corruptions, corrupted, {}
            for cond, by_key in corrupted.feats.items():
                run.corrupted_pred[cond] = {
                    v.key: knn_classify(feats["train"][v.key], ytr_all.tolist(), by_key[v.key], yte.tolist(),
                                        [st.k_report], st.temperature, num_classes, backend=used_backend,
                                        device=extractor.device, max_block_bytes=search_block_bytes).pred[st.k_report]
                    for v in views}
            run.corruption_search_s = time.perf_counter() - t2
        return [run]
    runs: list[KnnRun] = []
    for sub in train_subsets:
        proto, run_st, clipped = protocol, st, None
        c = clip_ks(st.k, st.k_report, len(sub.indices))
        if c is not None:
            clipped = {"requested": list(st.k), "used": c[0], "n_train": int(len(sub.indices))}
            proto = protocol.with_overrides(k=c[0], k_report=c[1])
            run_st = dataclasses.replace(st, k=tuple(c[0]), k_report=c[1])
        runs.append(one(proto, run_st, np.asarray(sub.indices), extraction if not runs else _shared(extraction, None),
                        sub, clipped))
    return runs
