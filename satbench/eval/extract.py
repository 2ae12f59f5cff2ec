"""Extract once, evaluate many: decode each image once, derive every view (scale / transform) from that decode, batch by
size, and keep the features in the on-disk :class:`~satbench.eval.cache.FeatureCache`.

A :class:`View` is one transform (PIL RGB image -> tensor in [0, 1]) with a JSON description that goes into cache keys and
records. :func:`extract_views` returns one ``[n, D]`` float32 array of normed CLS features per view, rows in sample order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from satbench.eval.cache import FeatureCache
from satbench.data.images import read_rgb
from satbench.runtime.distributed import DistInfo, shard_bounds
from satbench.errors import SatbenchError
from satbench.data.scene import Sample
from satbench.models.features import FeatureExtractor


@dataclass
class View:
    """One transform of the decoded image. ``input_res`` is passed to backbones that take it (Scale-MAE).

    ``corruption`` (a :class:`satbench.data.corruptions.ImageCorruption`, whose description is part of ``spec``) is
    applied to the decoded native-size image before ``transform``, seeded by the image's index in the whole split
    (never its index in a shard), so a corrupted view has the same features however the split is sharded."""

    key: str
    transform: Callable[[Any], torch.Tensor]
    spec: dict[str, Any]
    input_res: Optional[float] = None
    corruption: Optional[Any] = None


@dataclass
class ExtractStats:
    """What an extraction did: cache hits/misses per view, images decoded, seconds."""

    cached_views: list[str] = field(default_factory=list)
    computed_views: list[str] = field(default_factory=list)
    images_decoded: int = 0
    forward_images: int = 0
    seconds: float = 0.0
    cache_identity: Optional[str] = None  # how images were identified in cache keys (stat / sha256)
    cache_off: Optional[str] = None  # why the feature cache was turned off for this run (unusable folder)

    def as_dict(self) -> dict[str, Any]:
        d = {"cached_views": self.cached_views, "computed_views": self.computed_views,
             "images_decoded": self.images_decoded, "forward_images": self.forward_images,
             "seconds": round(self.seconds, 3)}
        if self.cache_identity is not None:
            d["cache_identity"] = self.cache_identity
        if self.cache_off is not None:
            d["cache_off"] = self.cache_off
        return d


def cache_key(extractor: FeatureExtractor, split_sha256: str, view: View, layer: str = "cls",
              images: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """Everything that changes the features of ``view`` on a split file; ``images`` is the identity of the image files
    (:meth:`satbench.eval.cache.FeatureCache.image_identity`), so images changed in place under the same names miss."""
    d = extractor.describe()
    return {
        "v": 2,
        "model": d["model"],
        "weights": extractor.loaded.weights.sha256 or extractor.loaded.weights.tag,
        "model_options": d["model_options"],
        "normalization": d["normalization"],
        "bf16": d["bf16"],
        "device_type": extractor.device.type,
        "split_sha256": split_sha256,
        "view": view.spec,
        "input_res": view.input_res,
        "layer": layer,
        "images": images,
    }


class _DecodedViews(Dataset):
    """Decodes sample i once and returns the tensors of every requested view; ``offset`` is the index of
    ``samples[0]`` in the whole split (a shard's start), which seeds corrupted views. Each corruption is computed once
    per image for all the views that share it (the scales of one type and severity)."""

    def __init__(self, samples: Sequence[Sample], views: Sequence[View], offset: int = 0) -> None:
        self.samples = samples
        self.views = views
        self.offset = offset

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...] | SatbenchError:
        try:
            img = read_rgb(self.samples[i].path)
            corrupted: dict[int, Any] = {}
            out = []
            for v in self.views:
                src = img
                if v.corruption is not None:
                    key = id(v.corruption)
                    if key not in corrupted:
                        corrupted[key] = v.corruption.apply(img, self.offset + i)
                    src = corrupted[key]
                out.append(v.transform(src))
        except SatbenchError as exc:  # passed back whole: a worker would wrap it in a multi-line traceback text
            return exc
        return tuple(out)


def _collate(items: list) -> Any:
    """Default collation, except that a decode error of any item becomes the batch (raised in the main process)."""
    for it in items:
        if isinstance(it, SatbenchError):
            return it
    return default_collate(items)


def extract_views(
    extractor: FeatureExtractor,
    samples: Sequence[Sample],
    views: Sequence[View],
    *,
    split_sha256: str,
    cache: Optional[FeatureCache] = None,
    batch_size: int = 64,
    num_workers: int = 1,
    progress: bool = True,
    desc: str = "extract",
    stats: Optional[ExtractStats] = None,
    dist: Optional[DistInfo] = None,
) -> dict[str, np.ndarray]:
    """Normed-CLS features ``{view.key: [n, D] float32}`` for ``samples`` under every view.

    Views found in ``cache`` cost no forward pass and no decode; the others share one decode per image (in a DataLoader
    worker, overlapping the forward pass) and are batched per view, i.e. by input size.

    Under torchrun (``dist`` with several processes) each rank decodes and extracts a contiguous shard of the samples
    cut at batch boundaries (:func:`satbench.runtime.distributed.shard_bounds`), so every batch is a batch of the single-process
    run and the features are bit for bit the same; the shards are gathered in sample order on rank 0, which alone reads
    and writes the cache and gets the arrays (the other ranks get an empty dict). ``stats`` counts every rank's work.
    """
    from tqdm.auto import tqdm

    info = dist or DistInfo()
    stats = stats if stats is not None else ExtractStats()
    start = (stats.forward_images, stats.images_decoded)
    t0 = time.perf_counter()
    out: dict[str, np.ndarray] = {}
    todo: list[View] = []
    image_id = None
    if cache is not None and cache.enabled and info.is_main:
        stats.cache_identity = cache.identity
        image_id = cache.image_identity([s.path for s in samples])
    elif cache is not None and cache.disabled_reason:
        stats.cache_off = cache.disabled_reason
    for v in views:
        arr = cache.get(cache_key(extractor, split_sha256, v, images=image_id)) \
            if cache is not None and info.is_main else None
        if arr is not None and arr.shape[0] == len(samples):
            out[v.key] = arr
            stats.cached_views.append(v.key)
        else:
            todo.append(v)
    if info.enabled:  # every rank extracts what rank 0 did not find in the cache
        keys = set(info.broadcast_object([v.key for v in todo]))
        todo = [v for v in views if v.key in keys]
    lo, hi = shard_bounds(len(samples), batch_size, info.rank, info.world_size) if info.enabled else (0, len(samples))
    mine = samples[lo:hi]
    if todo and samples:
        on_gpu = getattr(getattr(extractor, "device", None), "type", "cpu") == "cuda"
        loader = DataLoader(_DecodedViews(mine, todo, offset=lo), batch_size=batch_size, shuffle=False,
                            num_workers=num_workers, persistent_workers=False, collate_fn=_collate,
                            pin_memory=on_gpu,  # page-locked batches: the extractor's non_blocking copies overlap
                            multiprocessing_context="fork" if num_workers > 0 else None)
        chunks: dict[str, list[np.ndarray]] = {v.key: [] for v in todo}
        with tqdm(total=len(mine), desc=desc, unit="img", disable=not progress, leave=False) as bar:
            for batch in loader:
                if isinstance(batch, SatbenchError):
                    raise batch
                for v, images in zip(todo, batch):
                    feats = extractor(images, input_res=v.input_res).cls
                    chunks[v.key].append(feats.cpu().numpy().astype(np.float32, copy=False))
                    stats.forward_images += len(images)
                stats.images_decoded += len(batch[0])
                bar.update(len(batch[0]))
        for v in todo:
            arr = (np.concatenate(chunks[v.key], axis=0) if chunks[v.key]
                   else np.zeros((0, extractor.feature_dim), dtype=np.float32))
            if info.enabled:
                shards = info.gather_object(arr)
                if not info.is_main:
                    continue
                arr = np.concatenate(shards, axis=0)
            out[v.key] = arr
            stats.computed_views.append(v.key)
            if cache is not None:
                cache.put(cache_key(extractor, split_sha256, v, images=image_id), arr,
                          {"model": extractor.card.name, "view": v.key, "n": len(samples)})
        if info.enabled:  # this call's work, summed over the ranks
            counts = torch.tensor([stats.forward_images - start[0], stats.images_decoded - start[1]], dtype=torch.int64)
            info.all_reduce_sum(counts)
            stats.forward_images, stats.images_decoded = start[0] + int(counts[0]), start[1] + int(counts[1])
    elif todo:
        for v in todo:
            out[v.key] = np.zeros((0, extractor.feature_dim), dtype=np.float32)
    if cache is not None and cache.disabled_reason:  # also when a cache write failed during this call
        stats.cache_off = cache.disabled_reason
    stats.seconds += time.perf_counter() - t0
    return out
