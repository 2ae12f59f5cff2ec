"""The fast linear protocol (``cached-linear-v1``): extract once through the feature cache, then train a grid of
linear heads (learning rates x weight decays) in one pass over the cached features (DINOv2 style).

1. Train and val features: the normed CLS of Resize(256, bicubic) + CenterCrop(224) (no augmentation), through
   :func:`satbench.eval.extract.extract_views`, so a second run (or the kNN task's identical view) costs no forward pass.
2. A stratified, seeded hold-out of ``holdout_fraction`` of train; every head of the grid is trained on the rest at the
   same time: the weights are one stacked tensor ``[H, C, D]`` updated by a vectorised AdamW with per-head lr and
   weight decay (:func:`train_heads`), cosine schedule per step, no warmup.
3. The head with the best hold-out top-1 wins (ties: the earlier grid point); its lr / wd are refit on the whole train
   split and reported on val (top-1 / top-5). All grid accuracies and the selection are recorded.
4. Calibration: each val prediction's softmax confidence. With temperature scaling (optional), ``T`` is fitted on the
   hold-out's logits of the *selected grid head* -- trained on the rest of train only, with the refit head's lr / wd
   and epochs -- and applied to the refit head's val logits (:mod:`satbench.stats.temperature`): the hold-out is a
   named, seeded fraction of the training split (``holdout_fraction``, ``--seed``), and no val image is ever seen.

A split family with a validation split of its own (TorchGeo's train / val / test, ``--split torchgeo``) replaces the
hold-out of steps 2-4 by that split (``selection_items``): the grid trains on the whole train split, the head is
selected on val, the temperature fitted on val, and the refit head reported on test; ``holdout_fraction`` is not used
and the record says so.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from satbench.eval.cache import FeatureCache
from satbench.data.transforms import eval_transform
from satbench.errors import DataError
from satbench.models.features import FeatureExtractor
from satbench.config.protocols import Protocol
from satbench.eval.extract import ExtractStats, View, extract_views
from satbench.eval.feature_guard import check_arrays
from satbench.eval.linear import topk_correct, topk_predictions
from satbench.eval.holdout import check_holdout, stratified_holdout  # noqa: F401 (re-exported)
from satbench.eval.cached_linear_settings import CachedLinearSettings  # noqa: F401 (re-exported)


def eval_view(resize: int = 256, crop: int = 224) -> View:
    """The val view shared with the probe protocol: Resize(resize, bicubic) + CenterCrop(crop) + ToTensor."""
    spec = {"resize": resize, "interpolation": "bicubic", "center_crop": crop, "to_tensor": True}
    return View(key=f"r{resize}c{crop}", transform=eval_transform(resize, crop), spec=spec)


def train_heads(x: Tensor, y: Tensor, lrs: Sequence[float], wds: Sequence[float], num_classes: int, *, epochs: int,
                batch_size: int, seed: int = 0, init_std: float = 0.01, betas: tuple[float, float] = (0.9, 0.999),
                eps: float = 1e-8) -> tuple[Tensor, Tensor]:
    """Train ``H = len(lrs)`` linear heads at once on features ``x [n, D]``; returns ``(W [H, C, D], b [H, C])``.

    All heads see the same batches (seeded shuffle per epoch) and start from the same N(0, init_std) init; each head
    follows ``torch.optim.AdamW`` with its own lr (cosine to 0 over all steps, per step) and weight decay.
    """
    if len(lrs) != len(wds):
        raise ValueError("lrs and wds must have the same length")
    n, d = x.shape
    h = len(lrs)
    g = torch.Generator().manual_seed(seed)
    w0 = torch.empty(num_classes, d).normal_(0.0, init_std, generator=g)
    weight = w0.expand(h, -1, -1).clone().requires_grad_(True)
    bias = torch.zeros(h, num_classes, requires_grad=True)
    lr0 = torch.tensor(lrs, dtype=torch.float32)
    wd = torch.tensor(wds, dtype=torch.float32)
    state = [(torch.zeros_like(weight), torch.zeros_like(weight)), (torch.zeros_like(bias), torch.zeros_like(bias))]
    b1, b2 = betas
    steps_per_epoch = math.ceil(n / batch_size)
    total = epochs * steps_per_epoch
    step = 0
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            xb, yb = x[idx], y[idx]
            logits = torch.einsum("bd,hcd->hbc", xb, weight) + bias[:, None, :]
            loss = F.cross_entropy(logits.reshape(-1, num_classes), yb.repeat(h), reduction="sum") / len(idx)
            gw, gb = torch.autograd.grad(loss, (weight, bias))
            lr = lr0 * 0.5 * (1.0 + math.cos(math.pi * step / total))
            step += 1
            with torch.no_grad():
                for p, grad, (m, v) in ((weight, gw, state[0]), (bias, gb, state[1])):
                    shape = (h,) + (1,) * (p.ndim - 1)
                    p.mul_((1 - lr * wd).view(shape))
                    m.mul_(b1).add_(grad, alpha=1 - b1)
                    v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                    bc1, bc2 = 1 - b1 ** step, 1 - b2 ** step
                    denom = (v.sqrt() / math.sqrt(bc2)).add_(eps)
                    p.sub_((lr / bc1).view(shape) * m / denom)
    return weight.detach(), bias.detach()


def heads_accuracy(x: Tensor, y: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Top-1 (percent) of each head ``[H]``."""
    logits = torch.einsum("bd,hcd->hbc", x, weight) + bias[:, None, :]
    return 100.0 * (logits.argmax(-1) == y[None]).float().mean(dim=1)


@dataclass
class CachedLinearResult:
    top1: float
    top5: Optional[float]
    val_loss: float
    selected: dict[str, float]
    grid: list[dict[str, float]]
    holdout: dict[str, Any]
    extract: dict[str, Any]
    settings: CachedLinearSettings
    seconds: dict[str, float] = field(default_factory=dict)
    #: val labels, the refit head's top-1 class and top-5 hit per val image (val split order)
    y_val: Optional[np.ndarray] = None
    pred: Optional[np.ndarray] = None
    top5_hit: Optional[np.ndarray] = None
    #: the train subset the heads were fitted on (None: the whole train split)
    subset: Any = None
    #: the record's ``features`` section (:func:`satbench.eval.feature_guard.check_arrays` on the val features)
    features: Optional[dict[str, Any]] = None
    #: the softmax confidence of each val prediction; with temperature scaling, the fit and the scaled confidences
    conf: Optional[np.ndarray] = None
    temperature_fit: Any = None
    conf_scaled: Optional[np.ndarray] = None
    #: the refit head (weight [C, D], bias [C]) that gave ``pred``
    head: Any = None
    #: ``--corruptions``: the plan, the corrupted val features' account and the head's top-1 per (type, severity)
    corruption_plan: Any = None
    corrupted_extraction: Any = None
    corrupted_pred: Optional[dict[tuple[str, int], np.ndarray]] = None

    @property
    def summary(self) -> dict[str, Any]:
        return {"top1": self.top1, "top5": self.top5}


def run_cached_linear(extractor: FeatureExtractor, train_items: Sequence[Any], val_items: Sequence[Any],
                      num_classes: int, protocol: Protocol, *, train_split_sha256: str, val_split_sha256: str,
                      cache: Optional[FeatureCache] = None, batch_size: int = 64, num_workers: int = 1,
                      seed: int = 0, progress: bool = True, dist: Any = None,
                      train_subsets: Sequence[Any] = (), allow_collapsed_features: bool = False,
                      temperature_scaling: bool = False, corruptions: Any = None,
                      selection_items: Optional[Sequence[Any]] = None,
                      selection_split_sha256: Optional[str] = None) -> Any:
    """Run ``cached-linear-v1`` (see the module docstring); ``batch_size`` is the extraction batch. Under torchrun
    (``dist``) every rank extracts a shard; rank 0 trains the heads and returns the result, the others None.

    ``train_subsets`` (:class:`satbench.stats.fractions.Subset`): fit (hold-out, grid, refit) on each subset of the
    train features instead, from one extraction of the full split; returns a list of results, one per subset.

    The val features are checked before any head is trained (:mod:`satbench.eval.feature_guard`: NaN / inf in either
    split and collapse fail in one line; ``allow_collapsed_features`` records a collapse instead).
    ``temperature_scaling``: fit a temperature on the hold-out (step 4 of the module docstring).
    ``corruptions`` (a :class:`satbench.eval.corruption_eval.CorruptionPlan`, whole train split only): the val split
    is also extracted under each (type, severity), each a cached view, and classified by the refit head.
    ``selection_items`` (with ``selection_split_sha256``): a validation split of the split family that selects the
    head and fits the temperature instead of a hold-out of train; ``val_items`` is then the reported (test) split."""
    s = CachedLinearSettings.from_protocol(protocol)
    y_all = np.asarray([int(it.label) for it in train_items])
    if selection_items is not None and (not selection_items or selection_split_sha256 is None):
        raise DataError("the selection (val) split is empty" if selection_items is not None and not selection_items
                        else "selection_items needs selection_split_sha256")
    for sub in train_subsets if selection_items is None else ():
        check_holdout(y_all[np.asarray(sub.indices)], s.holdout_fraction, seed,
                      f"train subset {sub.kind} {sub.value} (draw {sub.draw})")
    view = eval_view(s.val_resize, s.val_crop)
    stats = ExtractStats()
    t0 = time.perf_counter()
    f_train = extract_views(extractor, train_items, [view], split_sha256=train_split_sha256, cache=cache,
                            batch_size=batch_size, num_workers=num_workers, progress=progress, desc="train features",
                            stats=stats, dist=dist).get(view.key)
    f_val = extract_views(extractor, val_items, [view], split_sha256=val_split_sha256, cache=cache,
                          batch_size=batch_size, num_workers=num_workers, progress=progress, desc="val features",
                          stats=stats, dist=dist).get(view.key)
    f_sel = None
    if selection_items is not None:
        f_sel = extract_views(extractor, selection_items, [view], split_sha256=selection_split_sha256, cache=cache,
                              batch_size=batch_size, num_workers=num_workers, progress=progress,
                              desc="selection (val) features", stats=stats, dist=dist).get(view.key)
    t_extract = time.perf_counter() - t0
    corrupted = None
    if corruptions is not None:
        if train_subsets:
            raise DataError("--corruptions and train subsets cannot be combined in one run")
        from satbench.eval.corruption_eval import extract_corrupted

        corrupted = extract_corrupted(extractor, val_items, [view], corruptions, split_sha256=val_split_sha256,
                                      cache=cache, batch_size=batch_size, num_workers=num_workers, progress=progress,
                                      dist=dist, desc="val features")
    if f_train is None or f_val is None or (selection_items is not None and f_sel is None):
        return None  # not rank 0 of a sharded extraction
    y_train = y_all
    y_val = np.asarray([int(it.label) for it in val_items])
    if len(y_val) == 0:
        raise DataError("the val split is empty")
    if y_train.max(initial=0) >= num_classes or y_val.max(initial=0) >= num_classes:
        raise DataError(f"labels exceed the {num_classes} classes")
    extract = {"view": view.spec, **stats.as_dict()}
    name = getattr(getattr(extractor, "card", None), "name", "model")
    others = {"train features": f_train}
    selection = None
    if f_sel is not None:
        y_sel = np.asarray([int(it.label) for it in selection_items])
        if y_sel.max(initial=0) >= num_classes:
            raise DataError(f"labels exceed the {num_classes} classes")
        others["selection (val) features"] = f_sel
        selection = Selection(f_sel, y_sel, selection_split_sha256)
    features = check_arrays({view.key: f_val}, name, split_sha256=val_split_sha256,
                            views={view.key: {"spec": view.spec, "input_res": view.input_res}},
                            others=others, allow_collapsed=allow_collapsed_features)

    def scaling(split: str, sha: str) -> Optional[dict[str, str]]:
        if selection is not None:
            split, sha = "val", selection.split_sha256
        return {"split": split, "split_sha256": sha, "test_split_sha256": val_split_sha256} if temperature_scaling \
            else None

    if not train_subsets:
        res = _fit(f_train, y_train, f_val, y_val, num_classes, s, seed, extract, t_extract,
                   scaling("train", train_split_sha256), selection)
        res.features = features
        if corrupted is not None:
            w, b = res.head
            res.corruption_plan, res.corrupted_extraction = corruptions, corrupted
            res.corrupted_pred = {cond: topk_predictions(torch.from_numpy(by_key[view.key]) @ w.T + b,
                                                         torch.from_numpy(y_val).long())[0]
                                  for cond, by_key in corrupted.feats.items()}
        return res
    out = []
    for i, sub in enumerate(train_subsets):
        idx = np.asarray(sub.indices)
        shared = extract if i == 0 else {"view": view.spec, "cached_views": [], "computed_views": [],
                                         "images_decoded": 0, "forward_images": 0, "seconds": 0.0,
                                         "shared_with_record": None}  # the first subset's record id
        res = _fit(f_train[idx], y_train[idx], f_val, y_val, num_classes, s, seed, shared, t_extract if i == 0 else 0.0,
                   scaling(f"train subset {sub.kind} {sub.value} (draw {sub.draw})", sub.sha256), selection)
        res.subset = sub
        res.features = features
        out.append(res)
    return out


@dataclass(frozen=True)
class Selection:
    """A split family's own validation split: its features, labels and split sha256 (selection and temperature)."""

    feats: np.ndarray
    labels: np.ndarray
    split_sha256: str


def _fit(f_train: np.ndarray, y_train: np.ndarray, f_val: np.ndarray, y_val: np.ndarray, num_classes: int,
         s: CachedLinearSettings, seed: int, extract: dict[str, Any], t_extract: float,
         scaling: Optional[dict[str, str]] = None, selection: Optional[Selection] = None) -> CachedLinearResult:
    """Hold-out (or ``selection``: the split family's val split), grid, selection, refit on all of ``f_train``,
    evaluation on val (the reported split), confidences and (``scaling``: the fitting split's name and hashes) the
    temperature (steps 2-4 of the module docstring)."""
    t1 = time.perf_counter()
    xt = torch.from_numpy(f_train)
    yt = torch.from_numpy(y_train).long()
    if selection is None:
        fit, hold = stratified_holdout(y_train, s.holdout_fraction, seed)
        x_fit, y_fit, x_hold, y_hold = xt[fit], yt[fit], xt[hold], yt[hold]
        y_hold_np = y_train[hold]
        holdout = {"fraction": s.holdout_fraction, "seed": seed, "n_fit": int(len(fit)), "n_holdout": int(len(hold)),
                   "stratified": True}
    else:
        hold = np.arange(len(selection.labels))
        x_fit, y_fit = xt, yt
        x_hold, y_hold = torch.from_numpy(selection.feats), torch.from_numpy(selection.labels).long()
        y_hold_np = selection.labels
        holdout = {"split": "val", "split_sha256": selection.split_sha256, "fraction": None, "seed": seed,
                   "n_fit": int(len(y_train)), "n_holdout": int(len(hold)), "stratified": False,
                   "source": "the split family's own val split (the protocol's holdout_fraction is not used): the "
                             "grid trains on all of train, the head is selected on val, reported on test"}
    grid = s.grid()
    lrs, wds = [g[0] for g in grid], [g[1] for g in grid]
    w, b = train_heads(x_fit, y_fit, lrs, wds, num_classes, epochs=s.epochs, batch_size=s.batch_size, seed=seed,
                       init_std=s.head_init_std, betas=tuple(s.betas), eps=s.eps)
    acc = heads_accuracy(x_hold, y_hold, w, b)
    best = int(torch.argmax(acc))  # first maximum = earlier grid point on ties
    lr_sel, wd_sel = grid[best]
    t_grid = time.perf_counter() - t1

    t2 = time.perf_counter()
    w1, b1 = train_heads(xt, yt, [lr_sel], [wd_sel], num_classes, epochs=s.epochs, batch_size=s.batch_size,
                         seed=seed, init_std=s.head_init_std, betas=tuple(s.betas), eps=s.eps)
    xv, yv = torch.from_numpy(f_val), torch.from_numpy(y_val).long()
    logits = xv @ w1[0].T + b1[0]
    c1, c5 = topk_correct(logits, yv, (1, 5))
    pred, hit5 = topk_predictions(logits, yv)
    n = len(yv)
    t_refit = time.perf_counter() - t2
    from satbench.stats.temperature import softmax_confidence

    z_val = logits.double().numpy()
    conf = softmax_confidence(z_val, pred)
    t_fit, conf_scaled = None, None
    if scaling is not None:
        from satbench.stats.temperature import HoldOut, fit_temperature

        z_hold = (x_hold @ w[best].T + b[best]).double().numpy()   # the selected grid head never saw these
        if selection is None:
            where = HoldOut(scaling["split"], scaling["split_sha256"], tuple(int(i) for i in hold),
                            s.holdout_fraction, seed, "the protocol's selection hold-out (holdout_fraction, stratified, "
                            "seeded with --seed); logits of the selected grid head, trained on the rest of the split only")
        else:
            where = HoldOut("val", scaling["split_sha256"], tuple(int(i) for i in hold), 1.0, seed,
                            "the split family's whole val split; logits of the selected grid head, trained on train "
                            "only")
        t_fit = fit_temperature(z_hold, y_hold_np, where, test_split_sha256=scaling["test_split_sha256"])
        conf_scaled = softmax_confidence(z_val, pred, t_fit.temperature)
    return CachedLinearResult(
        top1=100.0 * c1 / n, top5=100.0 * c5 / n if num_classes >= 5 else None,
        val_loss=float(F.cross_entropy(logits, yv)),
        selected={"lr": lr_sel, "weight_decay": wd_sel, "holdout_top1": float(acc[best])},
        grid=[{"lr": lr, "weight_decay": wd, "holdout_top1": float(a)} for (lr, wd), a in zip(grid, acc.tolist())],
        holdout=holdout,
        extract=extract,
        settings=s,
        seconds={"extract": round(t_extract, 3), "grid": round(t_grid, 3), "refit": round(t_refit, 3)},
        y_val=y_val.astype(np.int64), pred=pred, top5_hit=hit5, conf=conf, temperature_fit=t_fit,
        conf_scaled=conf_scaled, head=(w1[0], b1[0]),
    )
