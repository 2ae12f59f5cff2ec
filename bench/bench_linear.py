"""Linear probing cost: SatDINO's protocol (satdino-linear-v1, augmented images through the frozen backbone every epoch)
vs the fast cached-linear-v1 (features extracted once through the feature cache, a 24-head lr x wd grid in one pass),
same backbone, same data, same process.

Prints a table: seconds per epoch and total seconds of satdino-linear-v1 (restricted to ``--epochs``; the 25-epoch
protocol cost is projected from the measured epochs and marked as such), cold-cache and warm-cache cached-linear-v1,
top-1 / top-5 on val, peak RSS, and the speed ratios.

Usage: python bench/bench_linear.py [--data /work/shared/data/uc_merced] [--epochs 1] [--bf16]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time

import torch
from tabulate import tabulate

from satbench.runtime.device import cpu_kind


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/data/uc_merced")
    ap.add_argument("--model", default="satdino-vit_small-16")
    ap.add_argument("--epochs", type=int, default=1, help="satdino-linear-v1 epochs actually run (protocol: 25)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for both protocols (recorded in the table)")
    ap.add_argument("--num-workers", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64, help="extraction batch of cached-linear")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=["all", "probe", "cached"], default="all",
                    help="run one side only (on a loaded shared machine); ratios need both")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from satbench.data.scene import open_scene_dataset
    from satbench.models.features import FeatureExtractor
    from satbench.models.registry import get_card
    from satbench.models.weights import load_model

    ds = open_scene_dataset(args.data)
    train, val = ds.samples("train"), ds.samples("val")
    card = get_card(args.model)
    ex = FeatureExtractor(load_model(card, "random", seed=0), device="cpu", bf16=args.bf16)
    n_cls = len(ds.classes)
    print(f"{ds.name}: {len(train)} train / {len(val)} val, {n_cls} classes; {card.name} random init (seed 0); "
          f"bf16={args.bf16}; threads={args.threads}; load avg {os.getloadavg()[0]:.1f}", flush=True)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t_lin = proj = None
        if args.only in ("all", "probe"):
            t_lin, proj = _probe(args, ex, train, val, n_cls, tmp, rows)
        if args.only in ("all", "cached"):
            _cached(args, ex, ds, train, val, n_cls, tmp, rows, t_lin, proj)
    print(f"CPU: {cpu_kind()}")
    print(tabulate(rows, headers=["protocol", "s/epoch", "total s", "top-1", "top-5", "peak RSS GiB",
                                  "speed-up vs linear-v1 run"], tablefmt="github"))


def _probe(args, ex, train, val, n_cls, tmp, rows):
    from satbench.eval.linear import train_classifier
    from satbench.config.protocols import load_protocol

    p_lin = load_protocol("satdino-linear-v1").with_overrides(epochs=args.epochs)
    t0 = time.perf_counter()
    res = train_classifier(ex, train, val, n_cls, p_lin, output_dir=os.path.join(tmp, "lin"),
                           num_workers=args.num_workers, progress=False)
    t_lin = time.perf_counter() - t0
    spe = sum(res.seconds_per_epoch) / len(res.seconds_per_epoch)
    rows.append([f"satdino-linear-v1 ({args.epochs} of 25 epochs)", f"{spe:.1f}", f"{t_lin:.1f}",
                 f"{res.best['acc1']:.2f}", f"{res.best['acc5']:.2f}", f"{peak_rss_gib():.2f}", "1.00"])
    proj = 25 * spe
    rows.append(["satdino-linear-v1, 25 epochs (PROJECTED)", f"{spe:.1f}", f"{proj:.0f}", "-", "-", "-", "-"])
    print(f"linear-v1 done: {t_lin:.1f} s; {rows[-2]}", flush=True)
    return t_lin, proj


def _cached(args, ex, ds, train, val, n_cls, tmp, rows, t_lin, proj):
    from satbench.eval.cache import FeatureCache
    from satbench.eval.cached_linear import run_cached_linear
    from satbench.config.protocols import load_protocol

    p_c = load_protocol("cached-linear-v1")
    cache = FeatureCache(os.path.join(tmp, "cache"))
    kw = dict(train_split_sha256=ds.splits["train"].sha256, val_split_sha256=ds.splits["val"].sha256,
              cache=cache, batch_size=args.batch_size, num_workers=args.num_workers, progress=False)
    for label in ("cold cache", "warm cache"):
        t0 = time.perf_counter()
        r = run_cached_linear(ex, train, val, n_cls, p_c, **kw)
        t = time.perf_counter() - t0
        rows.append([f"cached-linear-v1 ({label}; 24 heads x {r.settings.epochs} ep.)", "-", f"{t:.1f}",
                     f"{r.top1:.2f}", f"{r.top5:.2f}", f"{peak_rss_gib():.2f}",
                     f"{t_lin / t:.1f}" if t_lin else "-"])
        print(f"cached ({label}) done: {t:.1f} s {r.seconds}; selected {r.selected}", flush=True)
        if label == "cold cache":
            t_cold = t
    if proj:
        rows.append(["ratio: 25-epoch linear-v1 (projected) / cached cold", "-", "-", "-", "-", "-",
                     f"{proj / t_cold:.1f}"])


if __name__ == "__main__":
    main()
