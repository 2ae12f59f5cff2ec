"""CUDA throughput (run on a GPU machine; prints tables):

1. feature extraction at 224 px through satbench's FeatureExtractor (normalisation included) for satdino-vit_small-16,
   -8 and vit_base-16 in fp32 and bf16 autocast, against a plain timm ViT-S/16 forward in the same process, with the
   share of a large matmul's measured TFLOP/s that each reaches;
2. the 4-scale kNN of satdino-vit_small-16 on the bundled ucm-mini (420 real images, no cache), fp32 and bf16, the
   torch top-k backend on the GPU, against the same run on the CPU (faiss) when faiss is installed.

Usage: python bench/bench_gpu.py [--batches 10]
"""

from __future__ import annotations

import argparse
import time

import torch
from tabulate import tabulate


def matmul_tflops(dtype: torch.dtype, n: int = 8192, reps: int = 10) -> float:
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n ** 3 * reps / (time.perf_counter() - t) / 1e12


def flops_per_image(model: torch.nn.Module, size: int = 224) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(torch.zeros(1, 3, size, size, device="cuda"))
    return fc.get_total_flops() / 1e9


def images(n: int) -> torch.Tensor:
    """``n`` real bundled images at 224 px (uint8, repeated to fill the batch), on the GPU."""
    from satbench.data.images import read_rgb
    from satbench.data.scene import open_scene_dataset
    from satbench.data.transforms import knn_transform

    t = knn_transform(224)
    samples = open_scene_dataset("ucm-mini").samples("train")[:64]
    x = torch.stack([t(read_rgb(s.path)) for s in samples])
    return x.repeat((n + len(x) - 1) // len(x), 1, 1, 1)[:n].cuda()


def ips(fn, x: torch.Tensor, batches: int) -> float:
    with torch.inference_mode():
        fn(x)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(batches):
            fn(x)
        torch.cuda.synchronize()
    return len(x) * batches / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=10)
    a = ap.parse_args()
    import timm

    from satbench.models.features import FeatureExtractor
    from satbench.models.registry import get_card
    from satbench.models.weights import load_model

    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 rows are real fp32 (torch's default)
    peak = {False: matmul_tflops(torch.float32), True: matmul_tflops(torch.bfloat16)}
    print(f"{torch.cuda.get_device_name()}: matmul fp32 {peak[False]:.1f} TFLOP/s, bf16 {peak[True]:.1f} TFLOP/s")
    rows = []
    plain = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0).cuda().eval()
    g_plain = flops_per_image(plain)
    base = {}
    x256 = images(256)
    for bf16 in (False, True):
        ctx = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else torch.no_grad

        def run(b, ctx=ctx):
            with ctx():
                return plain(b)
        base[bf16] = ips(run, x256.float() / 255, a.batches)
        rows.append(["timm vit_small_patch16_224 (plain)", "bf16" if bf16 else "fp32", 256, f"{base[bf16]:.0f}",
                     f"{g_plain * base[bf16] / 1e3 / peak[bf16]:.2f}", "1.00x"])
    for name, bs in (("satdino-vit_small-16", 256), ("satdino-vit_small-8", 64), ("satdino-vit_base-16", 256)):
        for attn in ("matmul", "sdpa"):
            loaded = load_model(get_card(name), "random", attn_impl=attn)
            loaded.model.cuda()
            g = flops_per_image(loaded.model)
            x = x256[:bs]
            for bf16 in (False, True):
                fe = FeatureExtractor(loaded, device="cuda", bf16=bf16)
                r = ips(lambda b: fe(b), x, a.batches)
                vs = f"{r / base[bf16]:.2f}x" if name == "satdino-vit_small-16" else "-"
                rows.append([name, attn, "bf16" if bf16 else "fp32", bs, f"{r:.0f}", f"{g * r / 1e3 / peak[bf16]:.2f}", vs])
    for r in rows[:2]:
        r.insert(1, "sdpa (timm)")
    print(tabulate(rows, headers=["model", "attention", "precision", "batch", "images/s", "of matmul peak",
                                  "vs plain timm"]))
    print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")

    from satbench.data.scene import open_scene_dataset
    from satbench.eval.task_knn import run_knn
    from satbench.config.protocols import load_protocol

    proto = load_protocol("satdino-knn-v1", task="knn")
    ds = open_scene_dataset("ucm-mini")
    rows = []
    try:
        import faiss  # noqa: F401
        settings = [("cuda", False), ("cuda", True), ("cpu", False)]
    except ImportError:
        settings = [("cuda", False), ("cuda", True)]
    for dev, bf16 in settings:
        loaded = load_model(get_card("satdino-vit_small-16"), "random", seed=0)
        t = time.perf_counter()
        rec = run_knn(loaded, ds, proto, device=dev, bf16=bf16, progress=False, num_workers=4, batch_size=256)
        s = time.perf_counter() - t
        rows.append([dev, "bf16" if bf16 else "fp32", rec["extra"]["backend"], f"{s:.1f}",
                     f"{rec['summary']['top1_avg']:.2f}",
                     " / ".join(f"{v:.2f}" for v in rec["summary"]["top1_per_scale"].values())])
    print("4-scale kNN, satdino-vit_small-16 random init, ucm-mini (336 train + 84 val real images), no cache")
    print(tabulate(rows, headers=["device", "precision", "search", "seconds", "top-1 avg", "per scale"]))


if __name__ == "__main__":
    main()
