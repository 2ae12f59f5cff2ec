"""Start-up and warm re-run times of the CLI, end to end (separate processes), for this checkout and optionally a
baseline checkout (e.g. the previous release in a git worktree) in the same run.

    python bench/bench_startup.py [--baseline /path/to/old/checkout] [--repeats 3]

Measures `satbench --help`, `satbench models --no-flops`, and a warm-cache 4-scale kNN re-run on the bundled
ucm-mini (ViT-S/16, random weights; the first run fills a private feature cache, the timed ones are served from it).
Prints a table: best and median seconds, the ratio to the baseline, and the CPU kind.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tabulate import tabulate

from satbench.runtime.device import cpu_kind

HERE = Path(__file__).resolve().parents[1]


def timed(argv: list[str], env: dict[str, str], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = subprocess.run(argv, env=env, capture_output=True, text=True)
        out.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {r.stderr.strip()[-400:]}")
    return out


def measure(checkout: Path, repeats: int) -> dict[str, list[float]]:
    home = Path(tempfile.mkdtemp(prefix="satbench-startup-"))
    env = {**os.environ, "PYTHONPATH": str(checkout), "SATBENCH_HOME": str(home), "SATBENCH_RESULTS": str(home / "r"),
           "SATBENCH_OFFLINE": "1"}
    cli = [sys.executable, "-m", "satbench.cli"]
    knn = cli + ["run", "--task", "knn", "--weights", "random", "--no-progress", "--device", "cpu"]
    subprocess.run(knn, env=env, capture_output=True, check=True)  # fills the cache
    return {"satbench --help": timed(cli + ["--help"], env, repeats),
            "satbench models --no-flops": timed(cli + ["models", "--no-flops"], env, repeats),
            "warm-cache 4-scale kNN (ucm-mini)": timed(knn, env, repeats)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, default=None, help="another satbench checkout to compare with")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    now = measure(HERE, args.repeats)
    base = measure(args.baseline, args.repeats) if args.baseline else None
    rows = []
    for name, times in now.items():
        row = [name, f"{min(times):.2f}", f"{statistics.median(times):.2f}"]
        if base is not None:
            b = base[name]
            row += [f"{min(b):.2f}", f"{statistics.median(b):.2f}", f"{min(b) / min(times):.2f}x"]
        rows.append(row)
    headers = ["command", "best s", "median s"] + (["baseline best s", "baseline median s", "speed-up"] if base else [])
    print(f"CPU: {cpu_kind()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    print(tabulate(rows, headers=headers))


if __name__ == "__main__":
    main()
