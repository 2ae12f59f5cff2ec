"""Feature-extraction throughput of the ViT-L baselines (SatMAE, Scale-MAE) through satbench's FeatureExtractor.

Each configuration runs in its own subprocess (clean peak-memory figure): fp32 and bf16 autocast for
satmae-vit_large-16 and scalemae-vit_large-16 (random init: the timing does not depend on the weights), and a plain
timm ``vit_large_patch16_224`` forward (no normalisation, no satbench wrapper) as the baseline of the same run; the
ratio column is images/s relative to that plain fp32 baseline. Real images: UC Merced from /work/shared when
present, else the bundled ucm-mini subset; 224 px (resize 256 + centre crop).

On a CPU without native bf16 (AVX2-only), bf16 autocast is emulated and much slower: keep ``--bf16-batch`` small.

Usage: python bench/bench_baselines.py [--batch 8] [--batches 2] [--bf16-batch 1] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

MODELS = ("satmae-vit_large-16", "scalemae-vit_large-16")
PLAIN = "plain timm vit_large_patch16_224"


def image_root() -> Path:
    shared = Path("/work/shared/data/uc_merced")
    if (shared / "images").is_dir():
        return shared
    from satbench.runtime.resources import bundled_data_dir

    return bundled_data_dir() / "ucm-mini"


def load_batch(n: int, size: int = 224):
    import torch

    from satbench.data.images import read_rgb
    from satbench.data.transforms import knn_transform

    files = sorted((image_root() / "images").rglob("*.jpg"))[:n]
    t = knn_transform(size)
    return torch.stack([t(read_rgb(f)) for f in files])


def run_one(model: str, bf16: bool, batch: int, batches: int, device: str) -> dict:
    """Time ``batches`` batches of ``batch`` images (after a 1-image warm-up); returns one table row."""
    import torch

    t_build = time.perf_counter()
    if model == PLAIN:
        import timm

        net = timm.create_model("vit_large_patch16_224", pretrained=False, num_classes=0).eval().to(device)

        @torch.inference_mode()
        def fn(x):
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
                return net(x.to(device))
    else:
        from satbench.models.features import FeatureExtractor
        from satbench.models.registry import get_card
        from satbench.models.weights import load_model

        ext = FeatureExtractor(load_model(get_card(model), "random"), device=device, bf16=bf16)

        def fn(x):
            return ext(x).cls
    build_s = time.perf_counter() - t_build
    x = load_batch(batch)
    fn(x[:1])  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(batches):
        t = time.perf_counter()
        out = fn(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    assert out.shape == (batch, 1024) and bool(torch.isfinite(out.float()).all())
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda")
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"model": model, "dtype": "bf16-autocast" if bf16 else "fp32", "batch": batch, "batches": batches,
            "img/s": batch * batches / sum(times), "s/batch": sum(times) / batches, "build_s": build_s,
            "peak_MiB": peak, "peak_kind": "cuda-alloc" if device.startswith("cuda") else "rss"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batches", type=int, default=2)
    ap.add_argument("--bf16-batch", type=int, default=1, help="batch for the bf16 rows (emulated bf16 on AVX2 CPUs is slow)")
    ap.add_argument("--bf16-batches", type=int, default=1)
    ap.add_argument("--no-bf16", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "DTYPE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.one:
        model, dtype = args.one
        bf16 = dtype == "bf16"
        row = run_one(model, bf16, args.bf16_batch if bf16 else args.batch,
                      args.bf16_batches if bf16 else args.batches, args.device)
        print("ROW " + json.dumps(row))
        return 0

    configs = [(PLAIN, "fp32")] + [(m, "fp32") for m in args.models]
    if not args.no_bf16:
        configs += [(PLAIN, "bf16")] + [(m, "bf16") for m in args.models]
    rows = []
    for model, dtype in configs:
        cmd = [sys.executable, __file__, "--one", model, dtype, "--batch", str(args.batch), "--batches",
               str(args.batches), "--bf16-batch", str(args.bf16_batch), "--bf16-batches", str(args.bf16_batches),
               "--threads", str(args.threads), "--device", args.device]
        print(f"running {model} {dtype} ...", file=sys.stderr, flush=True)
        res = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "SATBENCH_OFFLINE": "1"})
        line = [ln for ln in res.stdout.splitlines() if ln.startswith("ROW ")]
        if res.returncode != 0 or not line:
            print(f"{model} {dtype} failed: {(res.stderr.strip().splitlines() or ['?'])[-1]}", file=sys.stderr)
            continue
        rows.append(json.loads(line[0][4:]))
    base = {r["dtype"]: r["img/s"] for r in rows if r["model"] == PLAIN}
    for r in rows:
        r["ratio_vs_plain_fp32"] = r["img/s"] / base["fp32"] if "fp32" in base else float("nan")
    from tabulate import tabulate

    print(f"device={args.device} threads={args.threads} images={image_root()} size=224")
    print(tabulate(rows, headers="keys", floatfmt=".3f"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
