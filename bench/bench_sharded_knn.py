"""4-scale kNN with 1 process and under torchrun with N processes (gloo on CPU, sharded extraction), end to end.

Each configuration is a separate `satbench run --task knn` process (no feature cache, so every image is decoded and
extracted), on the same model (ViT-S/16, random init seeded 0: weights do not change speed) and dataset. The table
gives wall seconds, the ratio to the single process, the world size recorded in the record, and whether top-1 at
every scale and k is identical to the single-process record (it must be: sharding is bit-exact).

    python bench/bench_sharded_knn.py [--dataset uc_merced] [--data-root /work/shared/data] [--nproc 2] [--model satdino-vit_small-16]

On this project's 2-core machines 2 processes share the same 2 cores as 1 process with 2 threads, so the figure
shows the overhead of sharding (process start, gather), not a speed-up; with one GPU or a set of cores per process
the extraction time divides by the world size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from satbench.runtime.device import cpu_kind


def run(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{r.stderr.strip()[-2000:]}")
    return dt


def record(folder: Path) -> dict:
    files = sorted(folder.glob("*.json"))
    if len(files) != 1:
        raise SystemExit(f"expected one record in {folder}, found {len(files)}")
    return json.loads(files[0].read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="uc_merced", help="catalog name or folder")
    ap.add_argument("--data-root", default="/work/shared/data")
    ap.add_argument("--model", default="satdino-vit_small-16")
    ap.add_argument("--nproc", type=int, nargs="+", default=[2])
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()

    print(f"CPU: {cpu_kind()}, {os.cpu_count()} cores, load average at start {os.getloadavg()[0]:.1f}")
    common = ["run", "--task", "knn", "--model", args.model, "--weights", "random", "--seed", "0", "--dataset",
              args.dataset, "--data-root", args.data_root, "--no-cache", "--no-progress", "--batch-size", str(args.batch_size), "--device", "cpu"]
    rows, base = [], None
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, SATBENCH_HOME=str(Path(tmp) / "home"), SATBENCH_OFFLINE="1")
        out1 = Path(tmp) / "one"
        secs = run([sys.executable, "-m", "satbench.cli", *common, "--results-dir", str(out1)], env)
        base = record(out1)
        rows.append(["1 process", f"{secs:.1f}", "1.00x", base["extra"].get("world_size", 1), "reference"])
        for n in args.nproc:
            out = Path(tmp) / f"n{n}"
            secs_n = run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
                          "-m", "satbench.cli", *common, "--results-dir", str(out)],
                         dict(env, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // n))))
            rec = record(out)
            same = rec["metrics"]["per_scale"] == base["metrics"]["per_scale"]
            rows.append([f"torchrun {n} processes", f"{secs_n:.1f}", f"{secs_n / secs:.2f}x",
                         rec["extra"].get("world_size"), "identical" if same else "DIFFERENT"])
    print(f"4-scale kNN, {args.model}, {args.dataset} ({base['metrics']['n_train']} train / "
          f"{base['metrics']['n_val']} val)")
    print(tabulate(rows, headers=["configuration", "seconds", "vs 1 process", "world size recorded",
                                  "top-1 per scale and k"]))
    print(f"average top-1: {base['summary'].get('top1_avg')}; load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
