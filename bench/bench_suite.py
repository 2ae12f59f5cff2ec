"""``satbench suite`` cost: the default suite (kNN satdino-knn-v1 + cached-linear-v1) on the bundled ucm-mini and on
full UC Merced, cold (empty feature cache and results folder), warm (``force``: every run again, features from the
cache) and resumed (every pair already recorded: all skipped).

Prints a table: seconds, runs, forward images the suite did, forward images independent runs without a feature cache
would have done (and the difference: what sharing extraction through the cache saved), the headline numbers, the CPU
kind and the load average.

Usage: python bench/bench_suite.py [--data-root /work/shared/data] [--only bundled|full|all] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

from tabulate import tabulate


def cpu_kind() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def phase(config, name: str, rows: list, scenario: str) -> None:
    from satbench.suite.run import run_suite

    t0 = time.perf_counter()
    res = run_suite(config)
    wall = time.perf_counter() - t0
    heads = []
    for r in res.done:
        v = r.record.summary.get("top1_avg", r.record.summary.get("top1"))
        heads.append(f"{r.item.task} {v:.2f}")
    if res.failed:
        heads.append("FAILED: " + "; ".join(f"{r.item.task} on {r.item.dataset}: {r.error}" for r in res.failed))
    did, alone = res.forward_images, res.forward_images_independent
    rows.append([scenario, name, f"{wall:.1f}", len(res.done), len(res.plan.by_status("skip")), did, alone,
                 alone - did, f"{res.model_load_s:.1f}", ", ".join(heads) or "-"])
    print(tabulate([rows[-1]], tablefmt="plain"), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default="/work/shared/data", help="folder holding uc_merced/")
    ap.add_argument("--model", default="satdino-vit_small-16")
    ap.add_argument("--weights", default="random")
    ap.add_argument("--only", choices=["all", "bundled", "full"], default="all")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--num-workers", type=int, default=None, help="decode workers (default: each task's)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from satbench.suite.plan import SuiteConfig

    scenarios = {"bundled": ["ucm-mini"], "full": ["uc_merced"]}
    wanted = [k for k in scenarios if args.only in ("all", k)]
    print(f"CPU: {cpu_kind()}, {os.cpu_count()} cores, torch threads {args.threads}; load avg "
          f"{os.getloadavg()[0]:.1f}; model {args.model}, weights {args.weights}", flush=True)
    rows: list = []
    for scenario in wanted:
        with tempfile.TemporaryDirectory(prefix="bench_suite_") as tmp:
            os.environ["SATBENCH_HOME"] = os.path.join(tmp, "home")
            os.environ["SATBENCH_CACHE"] = os.path.join(tmp, "cache")
            config = SuiteConfig(model=args.model, weights=args.weights, datasets=scenarios[scenario],
                                 data_root=args.data_root, results_dir=os.path.join(tmp, "results"), device="cpu",
                                 num_workers=args.num_workers)
            phase(config, "cold", rows, scenario)
            config.force = True
            phase(config, "warm (--force)", rows, scenario)
            config.force = False
            phase(config, "resume (all recorded)", rows, scenario)
    print()
    print(tabulate(rows, headers=["data", "phase", "seconds", "runs", "skipped", "forward imgs",
                                  "independent, no cache", "saved", "model load s", "headline"]))
    print(f"\nCPU: {cpu_kind()}; load avg at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
