"""The SatDINO training loop (``main_satdino.py``: ``train_satdino`` + ``train_one_epoch``).

One optimizer step per ``accum_steps`` micro-batches; schedules are indexed by optimizer step. Student
and teacher batch the crops by resolution; the teacher sees only the 2 global views. Loss =
DINO loss + ``gsd_weight`` x MSE(GSD read-out of the 12 normed student registers, per-view GSD).
"""

from __future__ import annotations

import contextlib
import csv
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from satbench.models.backbones.satdino import ARCHS, SatDINOViT
from satbench.models.features import pick_device
from satbench.errors import SatbenchError
from satbench.data.catalog import resolve_normalization
from satbench.config.protocols import Protocol
from satbench.pretrain.augment import MultiCropAugmentation
from satbench.pretrain.checkpoint import (CHECKPOINT, export_teacher, load_training_checkpoint, rng_state, save_checkpoint,
                         set_rng_state)
from satbench.pretrain.config import resolved
from satbench.runtime.distributed import DistInfo
from satbench.pretrain.head import DINOHead, GSDHead, MultiCropWrapper
from satbench.pretrain.loss import DINOLoss, gsd_loss
from satbench.pretrain.schedules import cosine_scheduler, scaled_lr

LOG_COLUMNS = ("epoch", "step", "it", "loss", "dino_loss", "gsd_loss", "gsd_err", "lr", "wd", "teacher_temp",
               "momentum")


def build_backbone(cfg: dict[str, Any], drop_path_rate: float) -> SatDINOViT:
    """The ViT of ``cfg``: SatDINO's (``model_type: satdino``) or plain DINO's without the GSD register
    (``model_type: dino``, as ``main_dino.py``); ``arch``, ``patch_size``, optional ``depth`` override."""
    arch = dict(ARCHS[cfg["arch"]])
    if cfg.get("depth"):
        arch["depth"] = cfg["depth"]
    return SatDINOViT(patch_size=cfg["patch_size"], drop_path_rate=drop_path_rate, pos_interp=cfg["pos_interp"],
                      gsd_register=cfg.get("model_type", "satdino") == "satdino", **arch)


def get_params_groups(model: nn.Module) -> list[dict[str, Any]]:
    """DINO's groups: 0 = weights with ndim > 1 (decayed), 1 = biases and 1-D params (``weight_decay`` 0)."""
    regularized, not_regularized = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.endswith(".bias") or len(param.shape) == 1:
            not_regularized.append(param)
        else:
            regularized.append(param)
    return [{"params": regularized}, {"params": not_regularized, "weight_decay": 0.0}]


def clip_gradients(model: nn.Module, clip: float) -> list[float]:
    """DINO's per-parameter gradient-norm clipping."""
    norms = []
    for _, p in model.named_parameters():
        if p.grad is not None:
            param_norm = p.grad.data.norm(2)
            norms.append(param_norm.item())
            clip_coef = clip / (param_norm + 1e-6)
            if clip_coef < 1:
                p.grad.data.mul_(clip_coef)
    return norms


def cancel_gradients_last_layer(epoch: int, model: nn.Module, freeze_last_layer: int) -> None:
    """Drop the gradients of every ``last_layer`` parameter while ``epoch < freeze_last_layer``."""
    if epoch >= freeze_last_layer:
        return
    for n, p in model.named_parameters():
        if "last_layer" in n:
            p.grad = None


@torch.no_grad()
def ema_update(student: nn.Module, teacher: nn.Module, m: float) -> None:
    """``teacher = m * teacher + (1 - m) * student`` for every parameter pair (heads and tokens included)."""
    for param_q, param_k in zip(student.parameters(), teacher.parameters()):
        param_k.data.mul_(m).add_((1 - m) * param_q.detach().data)


@dataclass
class EpochStats:
    epoch: int
    loss: float
    dino_loss: float
    gsd_loss: float
    gsd_err: float
    seconds: float
    images: int
    extra: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """Builds everything from a pretraining protocol and an image source, then trains."""

    def __init__(self, proto: Protocol, source: Any, output_dir: str | Path, *, ctx: Optional[DistInfo] = None,
                 progress: bool = True, monitor: Optional[Callable[["Trainer", int], dict[str, Any]]] = None,
                 allow_cpu_fp16: bool = False) -> None:
        """``allow_cpu_fp16``: run ``precision: fp16`` (float16 autocast + GradScaler, the paper's setting) on a
        CPU too, emulated and slow; meant for checking the fp16 numerics and scaler state without a GPU."""
        self.proto = proto
        self.cfg = resolved(proto)
        self.ctx = ctx or DistInfo(device=pick_device("auto"))  # CUDA when present, as the CLI's --device auto
        self.output_dir = Path(output_dir)
        self.progress = progress and self.ctx.is_main
        self.monitor = monitor
        cfg, dev = self.cfg, self.ctx.device
        if cfg["precision"] == "fp16" and dev.type != "cuda" and not allow_cpu_fp16:
            raise SatbenchError("precision fp16 (the paper's setting) needs a CUDA device; on CPU pass "
                                "--set precision=bf16 (autocast) or --set precision=fp32 (or --allow-cpu-fp16 to "
                                "emulate fp16 + GradScaler on the CPU, slowly)")
        self.source = source
        self.augment = MultiCropAugmentation(
            cfg["augmentation_type"], resolve_normalization(cfg["normalization"]),
            global_crops_scale=cfg["global_crops_scale"], local_crops_scale=cfg["local_crops_scale"],
            local_crops_number=cfg["local_crops_number"], global_crops_size=cfg["global_crops_size"],
            local_crops_size=cfg["local_crops_size"])
        source.transform = self.augment
        self.ncrops = self.augment.n_views
        per_step = cfg["batch_size_per_gpu"] * self.ctx.world_size
        if len(source) < per_step * cfg["accum_steps"]:
            raise SatbenchError(f"the data has {len(source)} images, fewer than one optimizer step needs "
                                f"(batch_size_per_gpu {cfg['batch_size_per_gpu']} x {self.ctx.world_size} processes "
                                f"x accum_steps {cfg['accum_steps']}); lower batch_size_per_gpu")

        # -- models (as main_satdino.py: student with drop_path, teacher without; same init) -------------
        torch.manual_seed(cfg["seed"])
        np.random.seed(cfg["seed"])
        random.seed(cfg["seed"])
        s_backbone = build_backbone(cfg, cfg["drop_path_rate"])
        t_backbone = build_backbone(cfg, 0.0)
        head_kw = dict(use_bn=cfg["use_bn_in_head"], nlayers=cfg["head_nlayers"], hidden_dim=cfg["head_hidden_dim"],
                       bottleneck_dim=cfg["head_bottleneck_dim"])
        embed = s_backbone.embed_dim
        self.student = MultiCropWrapper(s_backbone, DINOHead(embed, cfg["out_dim"],
                                                             norm_last_layer=cfg["norm_last_layer"], **head_kw)).to(dev)
        self.teacher = MultiCropWrapper(t_backbone, DINOHead(embed, cfg["out_dim"], **head_kw)).to(dev)
        self.gsd_head = GSDHead(embed).to(dev)
        self.gsd_trained = cfg["gsd_head"] == "trained"
        self.gsd_head.requires_grad_(self.gsd_trained)
        if self.ctx.enabled:
            self.student_ddp: nn.Module = nn.parallel.DistributedDataParallel(
                self.student, device_ids=[dev.index] if dev.type == "cuda" else None)
            # every rank starts from rank 0's GSD read-out, as DDP does for the student
            for p in self.gsd_head.parameters():
                torch.distributed.broadcast(p.data, 0)
        else:
            self.student_ddp = self.student
        self.teacher.load_state_dict(self.student.state_dict())
        for p in self.teacher.parameters():
            p.requires_grad = False

        self.dino_loss = DINOLoss(cfg["out_dim"], self.ncrops, cfg["warmup_teacher_temp"], cfg["teacher_temp"],
                                  cfg["warmup_teacher_temp_epochs"], cfg["epochs"], cfg["student_temp"],
                                  cfg["center_momentum"], all_reduce=lambda t: (self.ctx.all_reduce_sum(t), self.ctx.world_size)).to(dev)
        groups = get_params_groups(self.student)
        if self.gsd_trained:
            g = get_params_groups(self.gsd_head)
            groups[0]["params"] += g[0]["params"]
            groups[1]["params"] += g[1]["params"]
        self.optimizer = torch.optim.AdamW(groups)
        self.scaler = torch.amp.GradScaler(dev.type) if cfg["precision"] == "fp16" else None

        # -- data -------------------------------------------------------------------------------------
        self.sampler = DistributedSampler(source, num_replicas=self.ctx.world_size, rank=self.ctx.rank,
                                          shuffle=True, seed=cfg["seed"], drop_last=True)
        self.loader = DataLoader(source, sampler=self.sampler, batch_size=cfg["batch_size_per_gpu"],
                                 num_workers=cfg["num_workers"], pin_memory=dev.type == "cuda", drop_last=True)
        self.steps_per_epoch = len(self.loader) // cfg["accum_steps"]
        if self.steps_per_epoch < 1:
            raise SatbenchError("no full optimizer step fits in one epoch; lower batch_size_per_gpu or accum_steps")
        self.lr_peak = scaled_lr(cfg["lr"], cfg["batch_size_per_gpu"], self.ctx.world_size, cfg["accum_steps"])
        n, e = self.steps_per_epoch, cfg["epochs"]
        self.lr_schedule = cosine_scheduler(self.lr_peak, cfg["min_lr"], e, n, warmup_epochs=cfg["warmup_epochs"])
        self.wd_schedule = cosine_scheduler(cfg["weight_decay"], cfg["weight_decay_end"], e, n)
        self.momentum_schedule = cosine_scheduler(cfg["momentum_teacher"], 1.0, e, n)
        self.start_epoch = 0
        self.history: list[EpochStats] = []

    # -- precision ----------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        p = self.cfg["precision"]
        if p == "fp32":
            return contextlib.nullcontext()
        dtype = torch.float16 if p == "fp16" else torch.bfloat16
        return torch.autocast(device_type=self.ctx.device.type, dtype=dtype)

    # -- checkpoints --------------------------------------------------------------------------------
    def meta(self, epoch_done: int) -> dict[str, Any]:
        """What every checkpoint and the exported teacher record about this run."""
        return {"config_name": self.proto.name, "config_hash": self.proto.hash, "overrides": self.proto.overrides,
                "config": self.cfg, "epochs_done": epoch_done, "gsd_head": self.cfg["gsd_head"],
                "world_size": self.ctx.world_size, "data": getattr(self.source, "description", {}),
                "arch": {"arch": self.cfg["arch"], "patch_size": self.cfg["patch_size"],
                         "embed_dim": self.student.backbone.embed_dim, "depth": self.student.backbone.depth,
                         "num_heads": self.student.backbone.num_heads}}

    def state(self, epoch_done: int) -> dict[str, Any]:
        rngs = self.ctx.all_gather_object(rng_state())
        return {"student": self.student.state_dict(), "teacher": self.teacher.state_dict(),
                "optimizer": self.optimizer.state_dict(), "epoch": epoch_done,
                "fp16_scaler": self.scaler.state_dict() if self.scaler else None,
                "dino_loss": self.dino_loss.state_dict(), "gsd_head": self.gsd_head.state_dict(),
                "gsd_head_mode": self.cfg["gsd_head"], "config": self.cfg, "protocol": self.proto.as_record(),
                "meta": self.meta(epoch_done), "rng": rngs, "sampler_seed": self.cfg["seed"]}

    def resume(self, path: Optional[Path] = None) -> int:
        """Restore everything from ``output_dir/checkpoint.pth``; returns the epoch to start from."""
        path = path or self.output_dir / CHECKPOINT
        ck = load_training_checkpoint(path)
        if ck["config"] != self.cfg:
            diff = sorted(k for k in set(ck["config"]) | set(self.cfg) if ck["config"].get(k) != self.cfg.get(k))
            raise SatbenchError(f"--resume: {path} was trained with a different config (differs in: {', '.join(diff)})")
        if len(ck["rng"]) != self.ctx.world_size:
            raise SatbenchError(f"--resume: {path} was written by {len(ck['rng'])} processes, this run has "
                                f"{self.ctx.world_size}; resume with the same world size")
        self.student.load_state_dict(ck["student"])
        self.teacher.load_state_dict(ck["teacher"])
        self.optimizer.load_state_dict(ck["optimizer"])
        if self.scaler is not None and ck.get("fp16_scaler"):
            self.scaler.load_state_dict(ck["fp16_scaler"])
        self.dino_loss.load_state_dict(ck["dino_loss"])
        self.gsd_head.load_state_dict(ck["gsd_head"])
        set_rng_state(ck["rng"][self.ctx.rank])
        self.start_epoch = int(ck["epoch"])
        return self.start_epoch

    # -- logging ------------------------------------------------------------------------------------
    def _log_path(self, name: str) -> Path:
        return self.output_dir / name

    def _prepare_logs(self) -> None:
        """Start the CSV logs, or drop the rows of epochs a resumed run will redo."""
        if not self.ctx.is_main:
            return
        for name, cols in (("log_iter.csv", LOG_COLUMNS), ("log_epoch.csv", EPOCH_COLUMNS)):
            p = self._log_path(name)
            rows = []
            if p.is_file() and self.start_epoch > 0:
                with open(p, newline="") as fh:
                    rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) < self.start_epoch]
            with open(p, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(cols))
                w.writeheader()
                w.writerows(rows)

    def _append(self, name: str, cols: tuple[str, ...], row: dict[str, Any]) -> None:
        if not self.ctx.is_main:
            return
        with open(self._log_path(name), "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=list(cols)).writerow({k: row.get(k) for k in cols})

    # -- the loop -----------------------------------------------------------------------------------
    def train(self, *, stop_after_epoch: Optional[int] = None) -> list[EpochStats]:
        """Train from ``start_epoch`` to ``epochs`` (or stop after ``stop_after_epoch`` epochs, for tests)."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_logs()
        end = self.cfg["epochs"] if stop_after_epoch is None else min(stop_after_epoch, self.cfg["epochs"])
        for epoch in range(self.start_epoch, end):
            stats = self.train_one_epoch(epoch)
            epoch_done = epoch + 1
            if self.monitor is not None and self.cfg["knn_freq"] and epoch_done % self.cfg["knn_freq"] == 0:
                stats.extra.update(self.monitor(self, epoch_done))
            state = self.state(epoch_done)
            if self.ctx.is_main:
                save_checkpoint(state, self.output_dir, epoch_done, self.cfg["saveckp_freq"])
                export_teacher(self.teacher.state_dict(), self.output_dir, self.meta(epoch_done))
                self._append("log_epoch.csv", EPOCH_COLUMNS, {**stats.__dict__, **stats.extra})
            self.ctx.barrier()
            self.history.append(stats)
        return self.history

    def train_one_epoch(self, epoch: int) -> EpochStats:
        cfg, dev = self.cfg, self.ctx.device
        accum = cfg["accum_steps"]
        self.sampler.set_epoch(epoch)
        self.student.train()
        self.teacher.train()
        t0 = time.perf_counter()
        sums = {"loss": 0.0, "dino_loss": 0.0, "gsd_loss": 0.0}
        n_steps = 0
        total_micro = self.steps_per_epoch * accum
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg['epochs']}", unit="step",
                       leave=False)
        micro = 0
        step_acc = {"loss": 0.0, "dino_loss": 0.0, "gsd_loss": 0.0}
        for crops, _, meta in self.loader:
            if micro >= total_micro:
                break
            step_in_epoch = micro // accum
            it = self.steps_per_epoch * epoch + step_in_epoch
            first, last = micro % accum == 0, micro % accum == accum - 1
            if first:
                for i, pg in enumerate(self.optimizer.param_groups):
                    pg["lr"] = float(self.lr_schedule[it])
                    if i == 0:
                        pg["weight_decay"] = float(self.wd_schedule[it])
                self.optimizer.zero_grad()
                step_acc = {"loss": 0.0, "dino_loss": 0.0, "gsd_loss": 0.0}
            crops = [c.to(dev, non_blocking=True) for c in crops]
            sync = contextlib.nullcontext()
            if self.ctx.enabled and not last:
                sync = self.student_ddp.no_sync()  # type: ignore[operator]
            with sync:
                with self._autocast():
                    teacher_output, _ = self.teacher(crops[:2])
                    student_output, student_reg = self.student_ddp(crops)
                    dloss = self.dino_loss(student_output, teacher_output, epoch)
                    if cfg["gsd_loss"]:
                        target = torch.cat([g.to(dev) for g in meta["gsd"]]).float()
                        gloss = gsd_loss(self.gsd_head(student_reg), target, cfg["gsd_loss"])
                        loss = dloss + cfg["gsd_weight"] * gloss
                    else:
                        gloss = torch.zeros((), device=dev)
                        loss = dloss
                if not math.isfinite(loss.item()):
                    raise SatbenchError(f"loss is {loss.item()} at epoch {epoch}, iteration {it}; stopping "
                                        f"(lower lr or use --set precision=fp32)")
                scaled = loss / accum
                if self.scaler is None:
                    scaled.backward()
                else:
                    self.scaler.scale(scaled).backward()
            step_acc["loss"] += loss.item() / accum
            step_acc["dino_loss"] += dloss.item() / accum
            step_acc["gsd_loss"] += gloss.item() / accum
            micro += 1
            if not last:
                continue
            if self.gsd_trained and self.ctx.enabled:
                for p in self.gsd_head.parameters():
                    if p.grad is not None:
                        torch.distributed.all_reduce(p.grad)
                        p.grad /= self.ctx.world_size
            if self.scaler is None:
                if cfg["clip_grad"]:
                    clip_gradients(self.student, cfg["clip_grad"])
                cancel_gradients_last_layer(epoch, self.student, cfg["freeze_last_layer"])
                self.optimizer.step()
            else:
                if cfg["clip_grad"]:
                    self.scaler.unscale_(self.optimizer)
                    clip_gradients(self.student, cfg["clip_grad"])
                cancel_gradients_last_layer(epoch, self.student, cfg["freeze_last_layer"])
                self.scaler.step(self.optimizer)
                self.scaler.update()
            m = float(self.momentum_schedule[it])
            ema_update(self.student, self.teacher, m)
            n_steps += 1
            for k in sums:
                sums[k] += step_acc[k]
            row = {"epoch": epoch, "step": step_in_epoch, "it": it, **step_acc,
                   "gsd_err": math.sqrt(max(step_acc["gsd_loss"], 0.0)), "lr": float(self.lr_schedule[it]),
                   "wd": float(self.wd_schedule[it]), "teacher_temp": self.dino_loss.temperature(epoch),
                   "momentum": m}
            self._append("log_iter.csv", LOG_COLUMNS, row)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{step_acc['loss']:.4f}", gsd_err=f"{row['gsd_err']:.3f}")
        if bar is not None:
            bar.close()
        secs = time.perf_counter() - t0
        mean = {k: v / max(n_steps, 1) for k, v in sums.items()}
        images = n_steps * accum * cfg["batch_size_per_gpu"] * self.ctx.world_size
        return EpochStats(epoch, mean["loss"], mean["dino_loss"], mean["gsd_loss"], math.sqrt(max(mean["gsd_loss"], 0)),
                          secs, images)


EPOCH_COLUMNS = ("epoch", "loss", "dino_loss", "gsd_loss", "gsd_err", "seconds", "images", "knn_top1")
