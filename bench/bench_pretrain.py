"""Pretraining step throughput on this CPU: satbench's SatDINO step (vit_small-16, 2x224 + 10x96 crops, 65536-d
head, GSD loss, AdamW, EMA) in fp32 and bf16 autocast, against a plain reference step written here (timm ViT-S/16,
eager fp32, unfused attention, one backbone pass per crop, hand-written DINO loss, same head size, AdamW, EMA).

Crops come from the real satdino augmentation of bundled ucm-mini images (augmentation timed separately); each
configuration runs in its own process so peak RSS is its own. images/s = source images per second (12 crops each).

Usage: python bench/bench_pretrain.py [--batch 4] [--steps 2] [--threads 2] [--device cpu|cuda]
On CUDA the satbench rows are fp32, fp16 (GradScaler, the paper's setting) and bf16 autocast; peak memory is the GPU's.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from satbench.runtime.device import cpu_kind

DEV = torch.device("cpu")


def make_batch(batch: int):
    from satbench.data.normalization import get_normalization
    from satbench.pretrain.augment import MultiCropAugmentation
    from satbench.pretrain.data import open_pretrain_source

    src = open_pretrain_source("ucm-mini", gsd=0.3)
    src.transform = MultiCropAugmentation("satdino", get_normalization("fmow"))
    t0 = time.perf_counter()
    items = [src[(i * 7) % len(src)] for i in range(batch)]
    aug_s = time.perf_counter() - t0
    crops = [torch.stack([it[0][v] for it in items]).to(DEV) for v in range(12)]
    gsd = [torch.tensor([it[2]["gsd"][v] for it in items]).to(DEV) for v in range(12)]
    return crops, gsd, batch / aug_s


def satbench_step(precision: str, batch: int, steps: int) -> dict:
    from satbench.pretrain.config import load_config
    from satbench.pretrain.head import DINOHead, GSDHead, MultiCropWrapper
    from satbench.pretrain.loss import DINOLoss, gsd_loss
    from satbench.pretrain.config import resolved
    from satbench.pretrain.trainer import build_backbone, ema_update, get_params_groups

    cfg = resolved(load_config("satdino-vit_small-16", [f"precision={precision}"]))
    torch.manual_seed(0)
    st = MultiCropWrapper(build_backbone(cfg, 0.1), DINOHead(384, 65536, norm_last_layer=False))
    te = MultiCropWrapper(build_backbone(cfg, 0.0), DINOHead(384, 65536))
    te.load_state_dict(st.state_dict())
    te.requires_grad_(False)
    st, te = st.to(DEV), te.to(DEV)
    gh = GSDHead(384).requires_grad_(False).to(DEV)
    loss_fn = DINOLoss(65536, 12, 0.04, 0.07, 30, 200).to(DEV)
    opt = torch.optim.AdamW(get_params_groups(st))
    scaler = torch.amp.GradScaler(DEV.type) if precision == "fp16" else None
    crops, gsd, aug_ips = make_batch(batch)
    target = torch.cat(gsd).float()

    def step():
        if precision in ("bf16", "fp16"):
            with torch.autocast(DEV.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16):
                t_out, _ = te(crops[:2])
                s_out, reg = st(crops)
                loss = loss_fn(s_out, t_out, 0) + 0.1 * gsd_loss(gh(reg), target)
        else:
            t_out, _ = te(crops[:2])
            s_out, reg = st(crops)
            loss = loss_fn(s_out, t_out, 0) + 0.1 * gsd_loss(gh(reg), target)
        opt.zero_grad()
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        ema_update(st, te, 0.996)
        return loss.item()

    return _time(step, steps, batch, aug_ips)


def reference_step(batch: int, steps: int) -> dict:
    """Plain DINO step: timm ViT-S/16 (unfused attention), each crop separately, eager fp32."""
    import timm
    import torch.nn.functional as F
    from torch import nn

    def model():
        vit = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0, dynamic_img_size=True)
        for b in vit.blocks:
            b.attn.fused_attn = False
        head = nn.Sequential(nn.Linear(384, 2048), nn.GELU(), nn.Linear(2048, 2048), nn.GELU(), nn.Linear(2048, 256))
        last = nn.utils.parametrizations.weight_norm(nn.Linear(256, 65536, bias=False))
        return nn.ModuleDict({"vit": vit, "head": head, "last": last})

    torch.manual_seed(0)
    st, te = model().to(DEV), model().to(DEV)
    te.load_state_dict(st.state_dict())
    te.requires_grad_(False)
    opt = torch.optim.AdamW(st.parameters(), weight_decay=0.04)
    crops, _, aug_ips = make_batch(batch)
    center = torch.zeros(1, 65536, device=DEV)

    def fwd(m, x):
        return m["last"](F.normalize(m["head"](m["vit"](x)), dim=-1))

    def step():
        nonlocal center
        t_out = [fwd(te, c) for c in crops[:2]]
        s_out = [fwd(st, c) for c in crops]
        loss, n = 0.0, 0
        for iq, t in enumerate(t_out):
            q = F.softmax((t - center) / 0.04, dim=-1)
            for v, s in enumerate(s_out):
                if v != iq:
                    loss = loss + (-q * F.log_softmax(s / 0.1, dim=-1)).sum(-1).mean()
                    n += 1
        loss = loss / n
        center = 0.9 * center + 0.1 * torch.cat(t_out).mean(0, keepdim=True)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for a, b in zip(st.parameters(), te.parameters()):
                b.mul_(0.996).add_(0.004 * a)
        return loss.item()

    return _time(step, steps, batch, aug_ips)


def _time(step, steps: int, batch: int, aug_ips: float) -> dict:
    step()  # warm-up
    times = []
    for _ in range(steps):
        if DEV.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()  # .item() of the loss synchronises
        times.append(time.perf_counter() - t0)
    best = min(times)
    peak = (torch.cuda.max_memory_allocated() / 2**30 if DEV.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)
    return {"step_s": best, "img_s": batch / best, "aug_img_s": aug_ips, "peak_rss_gb": peak}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    global DEV
    DEV = torch.device(a.device)
    torch.set_num_threads(a.threads)
    if a.one:
        res = reference_step(a.batch, a.steps) if a.one == "reference" else satbench_step(a.one, a.batch, a.steps)
        print(json.dumps(res))
        return
    from tabulate import tabulate

    rows, ref = [], None
    names = ("reference", "fp32", "fp16", "bf16") if a.device == "cuda" else ("reference", "fp32", "bf16")
    for name in names:
        out = subprocess.run([sys.executable, __file__, "--one", name, "--batch", str(a.batch), "--steps", str(a.steps),
                              "--threads", str(a.threads), "--device", a.device], capture_output=True, text=True,
                             check=False)
        if out.returncode != 0:
            print(f"{name}: failed (exit {out.returncode}): {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        if name == "reference":
            ref = r["img_s"]
        label = {"reference": "plain reference (timm, eager fp32, unfused, per-crop)",
                 "fp32": "satbench SatDINO step fp32", "fp16": "satbench SatDINO step fp16 + GradScaler",
                 "bf16": "satbench SatDINO step bf16 autocast"}[name]
        rows.append([label, f"{r['step_s']:.2f}", f"{r['img_s']:.2f}", f"{r['img_s'] / ref:.2f}x" if ref else "-",
                     f"{r['aug_img_s']:.1f}", f"{r['peak_rss_gb']:.2f}"])
    print(f"CPU: {cpu_kind()}")
    print(f"vit_small-16, 2x224 + 10x96 crops, out_dim 65536, batch {a.batch}, best of {a.steps} steps, "
          f"{a.threads} threads, device {a.device}" + (f" ({torch.cuda.get_device_name()})" if a.device == "cuda" else ""))
    mem = "peak GPU GiB" if a.device == "cuda" else "peak RSS GB"
    print(tabulate(rows, headers=["step", "s/step", "images/s", "vs reference", "augment img/s", mem]))


if __name__ == "__main__":
    main()
