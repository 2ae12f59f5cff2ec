"""Start-up and warm re-run times of the CLI, end to end (separate processes), for this checkout and optionally a
baseline checkout (e.g. the previous release in a git worktree) in the same run.

    python bench/bench_startup.py [--baseline /path/to/old/checkout] [--repeats 3]

Measures the listings a new user types first (`--help`, `run --help`, `models`, `results ls` and `leaderboard` md/csv
over the 12 leaderboard fixture records, `compare --help`) and, unless --no-knn, a warm-cache 4-scale kNN re-run on the
bundled ucm-mini (ViT-S/16, random weights; the first run fills a private feature cache, the timed ones are served
from it). Prints a table: best and median seconds, the ratio to the baseline, whether torch was imported, and the
CPU kind. A baseline of the commit before the change:

    git archive d22a0c5 | tar -x -C /tmp/base && python bench/bench_startup.py --baseline /tmp/base --no-knn
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


#: runs the CLI, then reports on stderr whether torch was imported (last line "torch: yes|no")
PROBE = ("import sys\nfrom satbench.cli.app import main\ntry:\n    sys.exit(main(sys.argv[1:]))\nfinally:\n"
         "    print('torch:', 'yes' if 'torch' in sys.modules else 'no', file=sys.stderr)\n")

LISTINGS = {
    "satbench --help": ["--help"],
    "satbench run --help": ["run", "--help"],
    "satbench run --task knn --help": ["run", "--task", "knn", "--help"],
    "satbench models": ["models"],
    "satbench models --no-flops": ["models", "--no-flops"],
    "satbench models --families": ["models", "--families"],
    "satbench results ls (12 records)": ["results", "ls"],
    "satbench leaderboard --format md": ["leaderboard", "--format", "md"],
    "satbench leaderboard --format csv": ["leaderboard", "--format", "csv"],
    "satbench compare --help": ["compare", "--help"],
}


def timed(argv: list[str], env: dict[str, str], repeats: int) -> tuple[list[float], str]:
    out, torch_seen = [], "?"
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=env["SATBENCH_HOME"])
        out.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {r.stderr.strip()[-400:]}")
        last = r.stderr.strip().splitlines()[-1:] or [""]
        torch_seen = last[0].split(": ", 1)[1] if last[0].startswith("torch: ") else "?"
    return out, torch_seen


def measure(checkout: Path, repeats: int, knn: bool = True) -> dict[str, tuple[list[float], str]]:
    home = Path(tempfile.mkdtemp(prefix="satbench-startup-"))
    env = {**os.environ, "PYTHONPATH": str(checkout), "SATBENCH_HOME": str(home),
           "SATBENCH_RESULTS": str(HERE / "tests" / "fixtures" / "leaderboard" / "records"), "SATBENCH_OFFLINE": "1"}
    cli = [sys.executable, "-c", PROBE]
    out = {name: timed(cli + argv, env, repeats) for name, argv in LISTINGS.items()}
    if knn:
        env["SATBENCH_RESULTS"] = str(home / "r")
        run = cli + ["run", "--task", "knn", "--weights", "random", "--no-progress", "--device", "cpu"]
        subprocess.run(run, env=env, capture_output=True, check=True, cwd=home)  # fills the cache
        out["warm-cache 4-scale kNN (ucm-mini)"] = timed(run, env, repeats)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, default=None, help="another satbench checkout to compare with")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-knn", action="store_true", help="only the listings (no kNN run)")
    args = ap.parse_args()
    now = measure(HERE, args.repeats, knn=not args.no_knn)
    base = measure(args.baseline, args.repeats, knn=not args.no_knn) if args.baseline else None
    rows = []
    for name, (times, torch_seen) in now.items():
        row = [name, f"{min(times):.2f}", f"{statistics.median(times):.2f}", torch_seen]
        if base is not None:
            b, b_torch = base[name]
            row += [f"{min(b):.2f}", f"{statistics.median(b):.2f}", b_torch, f"{min(b) / min(times):.1f}x"]
        rows.append(row)
    headers = ["command", "best s", "median s", "torch"] + (
        ["before best s", "before median s", "before torch", "speed-up"] if base else [])
    print(f"CPU: {cpu_kind()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
    print(tabulate(rows, headers=headers))


if __name__ == "__main__":
    main()
