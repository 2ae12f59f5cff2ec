"""Feature-extraction throughput of SatDINO backbones through satbench's FeatureExtractor, on real images.

Prints a table: images/s at 224 px for satdino-vit_small-16 and -8 (fp32, bf16 autocast), a plain timm ViT-S/16 forward
as the baseline in the same process, GFLOPs per image (full count incl. attention, torch's FlopCounterMode), and the
ratio to the FLOP limit = achieved GFLOP/s over a large fp32/bf16 matmul's GFLOP/s measured in the same run.

Usage: python bench/bench_extract.py [--images /work/shared/data/uc_merced] [--batches 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import torch
from tabulate import tabulate

from satbench.runtime.device import cpu_kind


def matmul_gflops(bf16: bool, n: int = 1024, reps: int = 3) -> float:
    """Best-of GFLOP/s of a large ``F.linear`` (the op ViT blocks spend their time in), fp32 or under bf16 autocast."""
    import torch.nn.functional as F
    from contextlib import nullcontext

    a = torch.randn(n, n)
    w = torch.randn(n, n)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if bf16 else nullcontext
    with ctx():
        F.linear(a, w)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        with ctx():
            F.linear(a, w)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def flops_per_image(model: torch.nn.Module, size: int = 224) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    return fc.get_total_flops() / 1e9


def load_batch(root: Path, n: int, size: int = 224) -> torch.Tensor:
    from satbench.data.images import read_rgb
    from satbench.data.transforms import knn_transform

    files = sorted((root / "images").rglob("*.jpg"))[:n]
    t = knn_transform(size)
    return torch.stack([t(read_rgb(f)) for f in files])


def time_fn(fn, x: torch.Tensor, bs: int, batches: int) -> float:
    fn(x[:bs])  # warm-up
    best = float("inf")
    for i in range(batches):
        xb = x[(i * bs) % len(x):(i * bs) % len(x) + bs]
        t = time.perf_counter()
        fn(xb)
        best = min(best, time.perf_counter() - t)
    return bs / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=Path, default=Path("/work/shared/data/uc_merced"))
    ap.add_argument("--batches", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 2)
    import timm

    from satbench.models.features import FeatureExtractor
    from satbench.models.registry import get_card
    from satbench.models.weights import load_model

    root = args.images if args.images.exists() else Path(__file__).resolve().parent.parent / "satbench/data/bundled/ucm-mini"
    x = load_batch(root, 64)
    cap = torch.backends.cpu.get_cpu_capability()
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    fast_bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    peak = {torch.float32: matmul_gflops(False), torch.bfloat16: matmul_gflops(True)}
    rows = []
    plain = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0).eval()
    with torch.inference_mode():
        base_ips = time_fn(lambda b: plain(b), x, 32, args.batches)
    g_plain = flops_per_image(plain)
    rows.append(["timm vit_small_patch16_224 (plain baseline)", "fp32", 32, f"{base_ips:.1f}", f"{g_plain:.2f}",
                 f"{g_plain * base_ips / peak[torch.float32]:.2f}", "1.00"])
    for name, bs in (("satdino-vit_small-16", 16), ("satdino-vit_small-8", 4)):
        loaded = load_model(get_card(name), "random")
        g = flops_per_image(loaded.model)
        for bf16 in (False, True):
            fe = FeatureExtractor(loaded, device="cpu", bf16=bf16)
            # bf16 is emulated (slow) on CPUs without avx512_bf16/AMX: time fewer, smaller batches there.
            slow = bf16 and not fast_bf16
            ips = time_fn(lambda b: fe(b), x, max(1, bs // 4) if slow else bs, 1 if slow else args.batches)
            lim = peak[torch.bfloat16 if bf16 else torch.float32]
            ratio = f"{ips / base_ips:.2f}" if name.endswith("-16") else "-"
            rows.append([name, "bf16" if bf16 else "fp32", bs, f"{ips:.1f}", f"{g:.2f}", f"{g * ips / lim:.2f}", ratio])
    print(f"CPU: {cpu_kind()}")
    print(f"images: {root} (224 px, kNN transform); threads: {torch.get_num_threads()}; CPU capability {cap}, "
          f"native bf16: {fast_bf16}")
    print(f"matmul limit (F.linear 1024^2): fp32 {peak[torch.float32]:.0f} GFLOP/s, bf16 autocast {peak[torch.bfloat16]:.0f} GFLOP/s")
    print(tabulate(rows, headers=["model", "precision", "batch", "img/s", "GFLOPs/img", "of FLOP limit", "vs plain"]))
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
