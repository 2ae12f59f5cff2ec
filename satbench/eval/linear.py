"""Linear probing and full fine-tuning as SatDINO's ``eval_linear.py`` does it (spec 4.1), resumable and data-parallel.

* Head: :class:`LinearClassifier` = one ``nn.Linear(D, C)`` named ``linear`` on the last-layer normed CLS token,
  weights N(0, 0.01), bias 0. No BatchNorm, no concatenation of blocks, no pooling.
* ``mode="head"``: backbone in eval mode under ``no_grad``; only the head learns. ``mode="full"``: backbone in train
  mode, trained with the head (one parameter group, or two when ``lr_head > 0``).
* AdamW (weight decay from the protocol, 0 for SatDINO) or SGD (momentum 0.9); lr = base x (batch x world) / 256;
  CosineAnnealingLR(T_max=epochs, eta_min=0) stepped per epoch; no warmup; cross-entropy.
* Train: RandomResizedCrop(224) (torchvision defaults) + horizontal flip; val: Resize(256, bicubic) + CenterCrop(224).
  Every image is normalised by the :class:`~satbench.models.features.FeatureExtractor` (the model's normalisation unless the
  protocol names another).
* Validation every epoch; top-1 / top-5 (top-5 when C >= 5); the reported numbers are the best epoch's (the last
  epoch's are recorded too).

Reproducibility: the training order depends only on ``(seed, epoch)`` and each sample's augmentation only on
``(seed, epoch, index)``, so a run resumed from its checkpoint ends in exactly the state of an uninterrupted one, and
W processes with batch B/W see the same batches as one process with batch B. Checkpoints are written atomically every
epoch as ``{'teacher': backbone (official keys), 'linear_head': {'linear.weight', 'linear.bias'}, 'optimizer',
'scheduler', 'epoch', 'best_acc', 'history', 'rng', ...}``: :func:`satbench.models.weights.load_model` reads them, and so does
the official loader (``teacher`` strictly into the ViT, ``linear_head`` into ``LinearClassifier``).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from satbench.data.transforms import eval_transform, train_transform
from satbench.errors import ProtocolError, SatbenchError, WeightsError
from satbench.models.features import FeatureExtractor
from satbench.io.atomic import atomic_torch_save
from satbench.io.locking import holds_output_lock
from satbench.config.protocols import Protocol
from satbench.runtime.rng import rng_state, set_rng_state
from satbench.runtime.distributed import DistInfo, EpochShuffleSampler, ShardSampler, all_reduce_sum, barrier
from satbench.eval.labeled_images import LabeledImages, _loader, _mix  # noqa: F401 (re-exported)
from satbench.eval.linear_head import LinearClassifier, head_state, load_linear_head  # noqa: F401 (re-exported)
from satbench.eval.linear_settings import MODES, LinearSettings  # noqa: F401 (re-exported)
from satbench.eval.metrics import EvalMetrics, topk_correct  # noqa: F401 (re-exported)
from satbench.eval.feature_guard import FeatureMoments, judge, section

CHECKPOINT_FORMAT = "satbench.linear/1"
CHECKPOINT_NAME = "checkpoint.pth"
BEST_NAME = "checkpoint_best.pth"


@dataclass
class ValPredictions:
    """Per-image results of one evaluation, in val split order: the top-1 class and whether the label is in the
    top 5 (the terms whose means are ``acc1`` / ``acc5``), and the softmax confidence of the top-1 class (float64;
    None from a checkpoint written before it was kept)."""

    pred: np.ndarray      # int64 [n]
    top5_hit: np.ndarray  # bool [n]
    conf: Optional[np.ndarray] = None  # float64 [n]
    #: float64 ``[n, C]``, kept only when asked (``keep_logits``: temperature scaling needs them)
    logits: Optional[np.ndarray] = None

    def as_checkpoint(self) -> dict[str, Tensor]:
        out = {"pred": torch.from_numpy(self.pred.astype(np.int64)), "top5_hit": torch.from_numpy(self.top5_hit)}
        if self.conf is not None:
            out["conf"] = torch.from_numpy(self.conf.astype(np.float64))
        if self.logits is not None:
            out["logits"] = torch.from_numpy(self.logits.astype(np.float64))
        return out

    @classmethod
    def from_checkpoint(cls, d: Any, n: int) -> Optional["ValPredictions"]:
        """From a checkpoint's ``best_predictions`` (None when absent or not the right shape)."""
        if not isinstance(d, dict) or not all(isinstance(d.get(k), Tensor) for k in ("pred", "top5_hit")):
            return None
        pred, hit = d["pred"].numpy().astype(np.int64), d["top5_hit"].numpy().astype(bool)
        conf = d["conf"].numpy().astype(np.float64) if isinstance(d.get("conf"), Tensor) else None
        if conf is not None and (conf.shape != (n,) or not ((conf >= 0) & (conf <= 1)).all()):
            conf = None
        logits = d["logits"].numpy().astype(np.float64) if isinstance(d.get("logits"), Tensor) else None
        if logits is not None and (logits.ndim != 2 or logits.shape[0] != n or not np.isfinite(logits).all()):
            logits = None
        return cls(pred, hit, conf, logits) if pred.shape == (n,) == hit.shape else None


def top1_confidence(logits: Tensor, pred: np.ndarray) -> np.ndarray:
    """The softmax probability (float64) of each row's predicted class ``pred``."""
    p = torch.softmax(logits.detach().to("cpu", torch.float64), dim=1)
    return p.gather(1, torch.from_numpy(np.asarray(pred, dtype=np.int64)).view(-1, 1)).squeeze(1).numpy().copy()


def topk_predictions(logits: Tensor, target: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(top-1 class int64, top-5 hit bool) per row, from the same ``topk`` call :func:`topk_correct` makes with
    ``ks=(1, 5)`` (so ties resolve identically and the means are exactly its counts)."""
    maxk = min(5, logits.shape[1])
    pred = logits.topk(maxk, dim=1).indices
    hit = pred.eq(target.view(-1, 1)).any(dim=1)
    return pred[:, 0].to("cpu", torch.int64).numpy().copy(), hit.cpu().numpy().copy()


def _gather_in_order(part: np.ndarray, n: int, info: DistInfo) -> Optional[np.ndarray]:
    """Rank 0: the per-image arrays of every rank in val order (rank ``r`` evaluated ``r, r + W, ...``, see
    :class:`satbench.runtime.distributed.ShardSampler`); the other ranks: None."""
    parts = info.gather_object(part)
    if parts is None:
        return None
    out = np.empty((n,) + part.shape[1:], dtype=part.dtype)
    for r, p in enumerate(parts):
        out[r::info.world_size] = p
    return out


@torch.no_grad()
def evaluate(extractor: FeatureExtractor, head: nn.Module, loader: DataLoader, info: DistInfo,
             num_classes: int, *, progress: bool = False, desc: str = "val") -> EvalMetrics:
    """Cross-entropy and top-1/top-5 (percent) of ``head`` on the backbone's normed CLS, summed over processes."""
    return evaluate_predictions(extractor, head, loader, info, num_classes, progress=progress, desc=desc)[0]


@torch.no_grad()
def evaluate_predictions(extractor: FeatureExtractor, head: nn.Module, loader: DataLoader, info: DistInfo,
                         num_classes: int, *, progress: bool = False, desc: str = "val", view: str = "val",
                         allow_collapsed_features: bool = False,
                         keep_logits: bool = False) -> tuple[EvalMetrics, Optional[ValPredictions]]:
    """:func:`evaluate` and the per-image predictions in val order (gathered on rank 0; None on the other ranks);
    ``keep_logits``: with the float64 logits too (:attr:`ValPredictions.logits`).

    The val features are checked on every rank from their summed moments (:mod:`satbench.eval.feature_guard`: NaN /
    inf and collapse fail in one line, a collapse is recorded instead with ``allow_collapsed_features``); the
    check is ``metrics.features`` (``view`` names the val transform in it).

    ``loader`` must iterate the val set in :class:`satbench.runtime.distributed.ShardSampler` order."""
    from tqdm.auto import tqdm

    backbone = extractor.model
    was_training = backbone.training, head.training
    backbone.eval()
    head.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # loss sum, correct1, correct5, n
    moments = FeatureMoments()
    preds, hits, confs, zs = [], [], [], []
    for x, y in tqdm(loader, desc=desc, disable=not progress, leave=False):
        y = y.to(extractor.device)
        with _autocast(extractor):
            feats = backbone(extractor.normalize(x))
        moments.add(feats)
        logits = head(feats.float())
        c1, c5 = topk_correct(logits, y, (1, 5))
        p, h = topk_predictions(logits, y)
        preds.append(p)
        hits.append(h)
        confs.append(top1_confidence(logits, p))
        if keep_logits:
            zs.append(logits.detach().double().cpu().numpy())
        sums += torch.tensor([float(F.cross_entropy(logits, y, reduction="sum")), c1, c5, len(y)], dtype=torch.float64)
    all_reduce_sum(sums, info)
    summed = moments.as_tensor(extractor.feature_dim)
    all_reduce_sum(summed, info)
    stats = FeatureMoments.from_tensor(summed).stats()
    judge(stats, f"{extractor.card.name}, {'held-out train' if view == 'holdout' else 'val'} features ({desc})",
          allow_collapsed=allow_collapsed_features)
    backbone.train(was_training[0])
    head.train(was_training[1])
    n = int(sums[3])
    if n == 0:
        raise SatbenchError("validation set is empty")
    metrics = EvalMetrics(loss=float(sums[0] / n), acc1=float(100.0 * sums[1] / n),
                          acc5=float(100.0 * sums[2] / n) if num_classes >= 5 else None, n=n,
                          features=section({view: stats}, allow_collapsed_features))
    cat = lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dtype=dt)  # noqa: E731
    pred = _gather_in_order(cat(preds, np.int64), n, info)
    hit = _gather_in_order(cat(hits, bool), n, info)
    conf = _gather_in_order(cat(confs, np.float64), n, info)
    z = _gather_in_order(np.concatenate(zs) if zs else np.zeros((0, num_classes)), n, info) if keep_logits else None
    return metrics, (ValPredictions(pred, hit, conf, z) if pred is not None else None)


def _autocast(extractor: FeatureExtractor):
    return torch.autocast(extractor.device.type, dtype=torch.bfloat16) if extractor.bf16 else nullcontext()




# ---------------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What a training run produced: per-epoch history, best and last epochs, where its checkpoints are."""

    history: list[dict[str, Any]]
    best: dict[str, Any]
    last: dict[str, Any]
    head: dict[str, Tensor]
    checkpoint: Optional[str]
    best_checkpoint: Optional[str]
    settings: LinearSettings
    world_size: int
    effective_lr: float
    resumed_from_epoch: int = 0
    seconds: float = 0.0
    seconds_per_epoch: list[float] = field(default_factory=list)
    #: the best epoch's per-image val predictions (rank 0; None elsewhere, or when resumed from a checkpoint written
    #: before they were kept)
    best_predictions: Optional[ValPredictions] = None
    #: the features check of the last evaluation's val features (:mod:`satbench.eval.feature_guard`)
    features: Optional[dict[str, Any]] = None
    #: ``temperature_holdout > 0`` only: the held-out part of train (:class:`HeldOut`, the best epoch's logits on it)
    held_out: Optional["HeldOut"] = None

    @property
    def summary(self) -> dict[str, Any]:
        """``{"top1", "top5"}`` of the best epoch (the leaderboard's convention for linear / finetune)."""
        return {"top1": self.best["acc1"], "top5": self.best["acc5"], "best_epoch": self.best["epoch"]}


@dataclass
class HeldOut:
    """The part of the train split held out of training for temperature scaling (``temperature_holdout``):
    ``indices`` into the train split (sorted; stratified and seeded by
    :func:`satbench.eval.holdout.stratified_holdout` with the run's seed), their labels, and the best epoch's
    head's float64 logits on them (eval transform; rank 0, None elsewhere or before the first evaluation)."""

    fraction: float
    indices: np.ndarray
    labels: np.ndarray
    n_fit: int
    logits: Optional[np.ndarray] = None

    def as_record(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "n_fit": self.n_fit, "n_holdout": int(len(self.indices)),
                "stratified": True, "transform": "the protocol's val transform",
                "purpose": "temperature scaling only: left out of training, logits of the best epoch's head"}


def split_held_out(train_items: Sequence[Any], fraction: float, seed: int) -> tuple[list[Any], Optional[HeldOut]]:
    """(the items to train on, the :class:`HeldOut` part) for ``temperature_holdout = fraction`` (0: all, None)."""
    if fraction <= 0:
        return list(train_items), None
    from satbench.eval.holdout import check_holdout, stratified_holdout

    labels = np.asarray([int(it.label) for it in train_items], dtype=np.int64)
    check_holdout(labels, fraction, seed, f"temperature_holdout {fraction:g} of the train split")
    fit, hold = stratified_holdout(labels, fraction, seed)
    return [train_items[i] for i in fit], HeldOut(fraction, hold, labels[hold], int(len(fit)))


class _Probe(nn.Module):
    """Backbone + head as one module (what DDP wraps in full mode)."""

    def __init__(self, backbone: nn.Module, head: LinearClassifier) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.backbone(x).float())


@holds_output_lock("output_dir", "linear/finetune training")  # also the default output dir; re-entrant
def train_classifier(
    extractor: FeatureExtractor,
    train_items: Sequence[Any],
    val_items: Sequence[Any],
    num_classes: int,
    protocol: Protocol,
    *,
    output_dir: Optional[str | Path] = None,
    resume: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    info: Optional[DistInfo] = None,
    progress: bool = True,
    on_epoch_end: Optional[Callable[[int, dict[str, Any]], None]] = None,
    allow_collapsed_features: bool = False,
) -> TrainResult:
    """Train a linear head (``mode: head``) or the whole network (``mode: full``) per ``protocol``.

    ``output_dir``: checkpoints go there every epoch (``checkpoint.pth``, plus ``checkpoint_best.pth`` with the best
    epoch's backbone and head); ``resume=True`` continues from ``checkpoint.pth`` (which must come from the same
    protocol, model and mode). ``on_epoch_end(epoch, metrics)`` runs after each epoch's checkpoint is written.
    Every evaluation checks the val features (:func:`evaluate_predictions`; ``allow_collapsed_features``); the last
    one's check is :attr:`TrainResult.features`.

    ``temperature_holdout > 0`` in the protocol: that stratified, seeded fraction of ``train_items`` is not trained
    on; each new best epoch's head is also evaluated on it (val transform), and its logits (and the val logits) are
    kept for temperature scaling (:attr:`TrainResult.held_out`, :attr:`ValPredictions.logits`).
    """
    from tqdm.auto import tqdm

    info = info or DistInfo()
    s = LinearSettings.from_protocol(protocol)
    if not train_items:
        raise SatbenchError("the training split is empty")
    train_items_all = train_items
    train_items, held_out = split_held_out(train_items_all, s.temperature_holdout, seed)
    device = extractor.device
    backbone = extractor.model
    dim = extractor.feature_dim
    full = s.mode == "full"
    out = Path(output_dir) if output_dir is not None else None
    ckpt_path = out / CHECKPOINT_NAME if out else None
    if out is not None and ckpt_path.exists() and not resume:
        raise SatbenchError(f"{ckpt_path} exists: pass --resume to continue that run or choose another --output-dir")
    if resume and (ckpt_path is None or not ckpt_path.is_file()):
        raise SatbenchError(f"--resume: no checkpoint at {ckpt_path or '(no --output-dir given)'}")

    torch.manual_seed(seed)
    head = LinearClassifier(dim, num_classes, init_std=s.head_init_std).to(device)
    for p in backbone.parameters():
        p.requires_grad_(full)
    probe = _Probe(backbone, head)
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        trained: nn.Module = DDP(probe if full else head, device_ids=ids)
    else:
        trained = probe if full else head

    lr = s.scaled_lr(info.world_size)
    if full and s.lr_head > 0:
        groups = [{"params": [p for p in backbone.parameters()], "lr": lr},
                  {"params": list(head.parameters()), "lr": s.scaled_lr(info.world_size, s.lr_head)}]
    else:
        groups = [{"params": list(probe.parameters()) if full else list(head.parameters()), "lr": lr}]
    if s.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=s.weight_decay)
    else:
        opt = torch.optim.SGD(groups, lr=lr, momentum=s.momentum, weight_decay=s.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s.epochs, eta_min=0)

    train_ds = LabeledImages(train_items, train_transform(s.train_crop), seed=seed)
    val_ds = LabeledImages(val_items, eval_transform(s.val_resize, s.val_crop))
    sampler = EpochShuffleSampler(len(train_ds), info, seed=seed, shuffle=True)
    val_loader = _loader(val_ds, ShardSampler(len(val_ds), info), s.batch_size, num_workers, device)
    hold_loader = None
    if held_out is not None:
        hold_ds = LabeledImages([train_items_all[i] for i in held_out.indices], eval_transform(s.val_resize, s.val_crop))
        hold_loader = _loader(hold_ds, ShardSampler(len(hold_ds), info), s.batch_size, num_workers, device)

    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"epoch": -1, "acc1": -1.0, "acc5": None}
    best_preds: Optional[ValPredictions] = None
    start_epoch = 0
    if resume:
        from satbench.models.weights import read_checkpoint

        ck = read_checkpoint(ckpt_path)
        _check_resumable(ck, ckpt_path, protocol, extractor, s)
        backbone.load_state_dict(ck["teacher"], strict=True)
        head.load_state_dict(ck["linear_head"], strict=True)
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start_epoch = int(ck["epoch"])
        best = dict(ck["best"])
        history = [dict(h) for h in ck["history"]]
        best_preds = ValPredictions.from_checkpoint(ck.get("best_predictions"), len(val_ds))
        if held_out is not None:
            z = ck.get("best_holdout_logits")
            if isinstance(z, Tensor) and z.ndim == 2 and z.shape[0] == len(held_out.indices):
                held_out.logits = z.numpy().astype(np.float64)
        set_rng_state(ck["rng"])

    t_run = time.perf_counter()
    epoch_secs: list[float] = []
    features: Optional[dict[str, Any]] = None
    for epoch in range(start_epoch, s.epochs):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        train_ds.epoch = epoch
        loader = _loader(train_ds, sampler, s.batch_size, num_workers, device)
        backbone.train(full)
        head.train()
        lr_now = opt.param_groups[0]["lr"]
        sums = torch.zeros(2, dtype=torch.float64)
        bar = tqdm(loader, desc=f"{s.mode} epoch {epoch + 1}/{s.epochs}", disable=not progress, leave=False)
        for x, y in bar:
            y = y.to(device, non_blocking=True)
            xn = extractor.normalize(x)
            with _autocast(extractor):
                if full:
                    logits = trained(xn)
                else:
                    with torch.no_grad():
                        feats = backbone(xn)
                    logits = trained(feats.float())
            loss = F.cross_entropy(logits.float(), y)
            if not torch.isfinite(loss):
                raise SatbenchError(f"{s.mode} training diverged: loss {float(loss)} at epoch {epoch + 1}; lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums += torch.tensor([float(loss.detach()) * len(y), len(y)], dtype=torch.float64)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        sched.step()
        all_reduce_sum(sums, info)
        row: dict[str, Any] = {"epoch": epoch, "lr": lr_now, "train_loss": float(sums[0] / sums[1])}
        if (epoch + 1) % s.val_freq == 0 or epoch + 1 == s.epochs:
            m, preds = evaluate_predictions(extractor, head, val_loader, info, num_classes, progress=progress,
                                            desc=f"val {epoch + 1}", view=f"r{s.val_resize}c{s.val_crop}",
                                            allow_collapsed_features=allow_collapsed_features,
                                            keep_logits=held_out is not None)
            features = m.features
            row.update(m.as_dict())
            if m.acc1 > best["acc1"]:
                best = {"epoch": epoch, "acc1": m.acc1, "acc5": m.acc5}
                best_preds = preds
                if held_out is not None:  # this head's logits on the held-out part of train (temperature scaling)
                    hm, hp = evaluate_predictions(extractor, head, hold_loader, info, num_classes, progress=progress,
                                                  desc=f"held-out train {epoch + 1}", view="holdout",
                                                  allow_collapsed_features=allow_collapsed_features,
                                                  keep_logits=True)
                    row["holdout_acc1"] = hm.acc1
                    held_out.logits = hp.logits if hp is not None else None
                if out is not None and info.is_main:
                    atomic_torch_save({"format": CHECKPOINT_FORMAT, "teacher": _cpu_state(backbone),
                                       "linear_head": head_state(head), "epoch": epoch + 1, "acc1": m.acc1,
                                       "acc5": m.acc5, "num_labels": num_classes, "mode": s.mode,
                                       "model": extractor.card.name, "protocol_hash": protocol.hash}, out / BEST_NAME)
        row["seconds"] = round(time.perf_counter() - t0, 3)
        epoch_secs.append(row["seconds"])
        history.append(row)
        if out is not None and info.is_main:
            atomic_torch_save({
                "format": CHECKPOINT_FORMAT,
                "teacher": _cpu_state(backbone),
                "linear_head": head_state(head),
                "epoch": epoch + 1,
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "best_acc": best["acc1"],
                "best": best,
                "history": history,
                "rng": rng_state(),
                "mode": s.mode,
                "num_labels": num_classes,
                "model": extractor.card.name,
                "weights": extractor.loaded.weights.as_dict(),
                "protocol_hash": protocol.hash,
                "protocol_name": protocol.name,
                "seed": seed,
                "world_size": info.world_size,
                **({"best_predictions": best_preds.as_checkpoint()} if best_preds is not None else {}),
                **({"best_holdout_logits": torch.from_numpy(held_out.logits)}
                   if held_out is not None and held_out.logits is not None else {}),
            }, ckpt_path)
        barrier(info)
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)

    last = next((h for h in reversed(history) if "acc1" in h), {})
    return TrainResult(
        history=history, best=best,
        last={"epoch": last.get("epoch"), "acc1": last.get("acc1"), "acc5": last.get("acc5")},
        head=head_state(head), checkpoint=str(ckpt_path) if ckpt_path else None,
        best_checkpoint=str(out / BEST_NAME) if out else None, settings=s, world_size=info.world_size,
        effective_lr=lr, resumed_from_epoch=start_epoch, seconds=time.perf_counter() - t_run,
        seconds_per_epoch=epoch_secs, best_predictions=best_preds if info.is_main else None, features=features,
        held_out=held_out,
    )


def _cpu_state(m: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}


def _check_resumable(ck: Any, path: Path, protocol: Protocol, extractor: FeatureExtractor, s: LinearSettings) -> None:
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise SatbenchError(f"{path}: not a satbench linear/finetune training checkpoint (format {CHECKPOINT_FORMAT})")
    missing = [k for k in ("teacher", "linear_head", "optimizer", "scheduler", "epoch", "best", "history", "rng")
               if k not in ck]
    if missing:
        raise SatbenchError(f"{path}: checkpoint lacks {', '.join(missing)}; cannot resume")
    if ck.get("protocol_hash") != protocol.hash:
        raise ProtocolError(f"{path}: written under protocol hash {str(ck.get('protocol_hash'))[:12]} "
                            f"({ck.get('protocol_name')}), this run's is {protocol.hash[:12]} ({protocol.name}); "
                            f"resume with the same protocol and overrides")
    if ck.get("model") != extractor.card.name or ck.get("mode") != s.mode:
        raise SatbenchError(f"{path}: checkpoint is for model {ck.get('model')} in mode {ck.get('mode')}, "
                            f"not {extractor.card.name} in mode {s.mode}")


def evaluate_with_head(extractor: FeatureExtractor, head_sd: Optional[dict[str, Tensor]], val_items: Sequence[Any],
                       num_classes: int, protocol: Protocol, *, num_workers: int = 0, info: Optional[DistInfo] = None,
                       progress: bool = True, where: str = "weights") -> EvalMetrics:
    """Evaluate a backbone with a saved / released ``linear_head`` on the protocol's val transform."""
    return evaluate_head_predictions(extractor, head_sd, val_items, num_classes, protocol, num_workers=num_workers,
                                     info=info, progress=progress, where=where)[0]


def evaluate_head_predictions(extractor: FeatureExtractor, head_sd: Optional[dict[str, Tensor]],
                              val_items: Sequence[Any], num_classes: int, protocol: Protocol, *, num_workers: int = 0,
                              info: Optional[DistInfo] = None, progress: bool = True, where: str = "weights",
                              allow_collapsed_features: bool = False) -> tuple[EvalMetrics, Optional[ValPredictions]]:
    """:func:`evaluate_with_head` and its per-image predictions in val order (rank 0)."""
    info = info or DistInfo()
    if head_sd is None:
        raise WeightsError(f"{where}: the checkpoint has no linear_head to evaluate (train one without --evaluate)")
    head = load_linear_head(head_sd, extractor.feature_dim, where=where).to(extractor.device)
    if head.num_labels != num_classes:
        raise WeightsError(f"{where}: linear_head has {head.num_labels} classes, the dataset has {num_classes}")
    s = LinearSettings.from_protocol(protocol)
    ds = LabeledImages(val_items, eval_transform(s.val_resize, s.val_crop))
    loader = _loader(ds, ShardSampler(len(ds), info), s.batch_size, num_workers, extractor.device)
    return evaluate_predictions(extractor, head, loader, info, num_classes, progress=progress,
                                view=f"r{s.val_resize}c{s.val_crop}", allow_collapsed_features=allow_collapsed_features)
