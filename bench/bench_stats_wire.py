"""Cost of the statistics wired into the runners (issue #14): intervals on linear / cached-linear records, the kNN
label-fraction runs on a warm feature cache, sidecar sizes.

Part 1 (in-process): the seconds :func:`satbench.stats.attach.attach` adds to a record -- the bootstrap intervals
(default 10,000 resamples) and the sidecar arrays -- for a linear / cached-linear / fine-tune record (one key) and a
4-scale x 4-k kNN record, at UC Merced's val size (420 images, the real val labels when --data has the split).

Part 2 (--data, fresh CLI processes, wall clock): on the given scene dataset with the test-only 2-block ViT-Tiny card
(tests/fixtures/cards; the statistics do not depend on the backbone, only on the val size, scales and k): a cold kNN
run filling the cache, a warm plain kNN run, the same warm run with ``--train-fraction 0.01 0.1 --draws 3``, and a warm
cached-linear run with the default 10,000 resamples against ``--resamples 1``; the sidecar sizes of those records.

Usage: python bench/bench_stats_wire.py [--data /work/shared/data/uc_merced] [--threads 2] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tabulate import tabulate

REPO = Path(__file__).resolve().parents[1]


def cpu_kind() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _median_s(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def part1(labels: np.ndarray, classes: int, repeat: int) -> list[list]:
    from satbench.stats.fields import classification_fields, knn_fields

    rng = np.random.default_rng(0)
    pred = np.where(rng.random(len(labels)) < 0.9, labels, rng.integers(0, classes, len(labels)))
    hit5 = rng.random(len(labels)) < 0.98
    preds = {(s, k): np.where(rng.random(len(labels)) < a, labels, rng.integers(0, classes, len(labels)))
             for s, a in ((1.0, 0.93), (0.5, 0.9), (0.25, 0.8), (0.125, 0.55)) for k in (10, 20, 100, 200)}
    top5 = {(s, 20): hit5 for s in (1.0, 0.5, 0.25, 0.125)}
    sha = "0" * 64
    rows = []
    t = _median_s(lambda: classification_fields(labels, pred, split_sha256=sha, num_classes=classes,
                                                top5_correct=hit5), repeat)
    rows.append(["linear / cached-linear / finetune record (top1 + top5 intervals)", len(labels), f"{t:.3f}"])
    t = _median_s(lambda: knn_fields(labels, preds, k_report=20, split_sha256=sha, num_classes=classes,
                                     top5_correct=top5), repeat)
    rows.append(["kNN record, 4 scales x 4 k (+ avg, robustness, top5_avg)", len(labels), f"{t:.3f}"])
    return rows


def _cli(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "satbench.cli", *args], env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"satbench {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return dt


def part2(data: Path, threads: int) -> tuple[list[list], list[list]]:
    tmp = Path(tempfile.mkdtemp(prefix="bench_stats_wire_"))
    env = {**os.environ, "SATBENCH_MODEL_CARDS": str(REPO / "tests" / "fixtures" / "cards"),
           "SATBENCH_CACHE": str(tmp / "cache"), "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(REPO)}
    base = ["run", "--model", "satdino-test-tiny", "--weights", "random", "--dataset", str(data), "--device", "cpu",
            "--no-progress", "--num-workers", "0"]
    rows = []
    knn = base + ["--task", "knn"]
    rows.append(["kNN cold (fills the cache)", f"{_cli(knn + ['--results-dir', str(tmp / 'cold')], env):.1f}"])
    warm = _cli(knn + ["--results-dir", str(tmp / "warm")], env)
    rows.append(["kNN warm, plain", f"{warm:.1f}"])
    frac = _cli(knn + ["--results-dir", str(tmp / "frac"), "--train-fraction", "0.01", "0.1", "--draws", "3"], env)
    rows.append(["kNN warm, --train-fraction 0.01 0.1 --draws 3 (6 runs + 2 aggregates)", f"{frac:.1f}"])
    cl = base + ["--task", "cached-linear"]
    _cli(cl + ["--results-dir", str(tmp / "cl0")], env)  # fills the cached-linear view
    r1 = _cli(cl + ["--results-dir", str(tmp / "cl1"), "--resamples", "1"], env)
    r10k = _cli(cl + ["--results-dir", str(tmp / "cl10k")], env)
    rows.append(["cached-linear warm, --resamples 1", f"{r1:.1f}"])
    rows.append(["cached-linear warm, 10,000 resamples (default)", f"{r10k:.1f}"])
    sizes = []
    for name in ("warm", "frac", "cl10k"):
        for p in sorted((tmp / name).glob("*.preds.npz"))[:1]:
            sizes.append([name, p.name.split("_")[1], p.stat().st_size])
    return rows, sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    print(f"CPU: {cpu_kind()} ({os.cpu_count()} logical CPUs, {a.threads} threads); python {platform.python_version()}")
    labels, classes = np.repeat(np.arange(21), 20), 21
    if a.data is not None and (a.data / "val.txt").is_file():
        from satbench.data.datasets import open_dataset

        ds = open_dataset(str(a.data))
        labels, classes = np.asarray([s.label for s in ds.samples("val")], dtype=np.int64), ds.num_classes
    print(tabulate(part1(labels, classes, a.repeat), headers=["intervals + sidecar arrays", "val images", "seconds"]))
    if a.data is not None:
        rows, sizes = part2(a.data, a.threads)
        print()
        print(tabulate(rows, headers=[f"fresh CLI process on {a.data.name}", "wall s"]))
        print()
        print(tabulate(sizes, headers=["run", "task", "sidecar bytes"]))


if __name__ == "__main__":
    main()
