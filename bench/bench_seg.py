"""Seconds per UperNet training iteration on CPU (ViT-S/16, random init, batch 2) at 224 and 512 crops.

Each setting runs in its own subprocess (so peak RSS is per setting): the real shipped Potsdam config
(UPerHead 512 channels, FCN aux head, AdamW) via ``model.train_step`` on synthetic uint8 batches
(data pre-processor included), and the plain baseline in the same run: the bare SatDINO ViT-S/16
forward + backward at the same size and batch.

    .venv/bin/python bench/bench_seg.py [--crops 224 512] [--iters 3] [--threads 2] [--frozen] [--device cuda]

On CUDA there is also an ``upernet-bf16`` row (mmengine's AmpOptimWrapper, bf16) and the memory column is the
GPU's peak allocation.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from satbench.runtime.device import cpu_kind


def one(crop: int, mode: str, iters: int, threads: int, device: str = "cpu") -> dict:
    import torch

    dev = torch.device(device)

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    from satbench.seg.config import build_config

    b = 2
    cfg = build_config("satdino-vit_small-16", "potsdam", crop, weights="random", frozen=(mode == "upernet-frozen"))
    init_default_scope("mmseg")
    if mode == "vit-only":
        from satbench.models.backbones.satdino import vit_small

        model = vit_small().train().to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=6e-5)
        x = torch.randn(b, 3, crop, crop, device=dev)

        def step():
            opt.zero_grad()
            out = model.forward_features(x)
            out.patches.float().mean().backward()
            opt.step()
    else:
        model = MODELS.build(cfg.model).train().to(dev)
        if mode == "upernet-bf16":
            cfg.optim_wrapper.type = "AmpOptimWrapper"
            cfg.optim_wrapper.dtype = "bfloat16"
        ow = build_optim_wrapper(model, cfg.optim_wrapper)
        samples = []
        for _ in range(b):
            s = SegDataSample()
            s.gt_sem_seg = PixelData(data=torch.randint(0, 6, (1, crop, crop)))
            s.set_metainfo(dict(img_shape=(crop, crop), pad_shape=(crop, crop), ori_shape=(crop, crop)))
            samples.append(s)
        data = {"inputs": [torch.randint(0, 256, (3, crop, crop), dtype=torch.uint8) for _ in range(b)],
                "data_samples": samples}

        def step():
            model.train_step(data, ow)
    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    step()  # warm-up
    times = []
    for _ in range(iters):
        sync()
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    peak_mib = (torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda"
                else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"crop": crop, "mode": mode, "s_per_iter_best": min(times), "s_per_iter_median": sorted(times)[len(times) // 2],
            "img_per_s": b / min(times), "peak_rss_mib": peak_mib}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crops", type=int, nargs="+", default=[224, 512])
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frozen", action="store_true", help="also time UperNet with a frozen backbone")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--one", nargs=2, metavar=("CROP", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1], args.iters, args.threads, args.device)))
        return 0
    from tabulate import tabulate

    modes = ["vit-only", "upernet"] + (["upernet-frozen"] if args.frozen else []) + \
        (["upernet-bf16"] if args.device == "cuda" else [])
    rows = []
    for crop in args.crops:
        base = None
        for mode in modes:
            out = subprocess.run([sys.executable, __file__, "--one", str(crop), mode, "--iters", str(args.iters),
                                  "--threads", str(args.threads), "--device", args.device], capture_output=True,
                                 text=True)
            if out.returncode != 0:
                print(out.stderr[-2000:], file=sys.stderr)
                return 1
            r = json.loads(out.stdout.strip().splitlines()[-1])
            base = base or r["s_per_iter_best"]
            rows.append([crop, mode, 2, f"{r['s_per_iter_best']:.2f}", f"{r['s_per_iter_median']:.2f}",
                         f"{r['img_per_s']:.2f}", f"{r['peak_rss_mib']:.0f}", f"{r['s_per_iter_best'] / base:.2f}x"])
    where = (f"device cuda ({__import__('torch').cuda.get_device_name()})" if args.device == "cuda"
             else f"CPU threads {args.threads}, load average {os.getloadavg()[0]:.1f}")
    print(f"CPU: {cpu_kind()}")
    print(f"{where}, {args.iters} timed iterations after 1 warm-up")
    print(tabulate(rows, headers=["crop", "setting", "batch", "s/iter best", "s/iter median", "img/s",
                                  "peak GPU MiB" if args.device == "cuda" else "peak RSS MiB", "vs vit-only"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
