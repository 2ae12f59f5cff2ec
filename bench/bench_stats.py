"""Cost of satbench's statistics layer: bootstrap intervals (10,000 resamples), `compare`, sidecar sizes.

Part 1 (always, synthetic predictions): the record helpers' intervals for a 4-scale x 4-k kNN record at UC Merced's val
size (420 images; real val labels when --data has the split), EuroSAT's (5,400) and fMoW's (53,000; also the one-key
linear record), one `compare` of two such records (reading and verifying both sidecars, paired bootstrap, McNemar,
Holm), and the sidecar sizes.

Part 2 (--real): two random-init ViT-S/16 (satdino-vit_small-16, seeds 0 and 1) through `satbench run --task knn`
(4 scales, k 10/20/100/200) on the bundled ucm-mini and on full UC Merced (--data), a warm re-run (in-process and as a
fresh CLI process), the intervals, and `satbench compare` of the two seeds. run_knn does not write sidecars yet, so
the predictions are rebuilt from the features run_knn classifies, with satbench's own search and vote (checked
against the record's top-1).

Part 3 (--records A B): the same timings on two existing kNN records with sidecars (e.g. part 2's).

Usage: python bench/bench_stats.py [--resamples 10000] [--threads 2] [--real] [--data /work/shared/data/uc_merced]
                                   [--records A.json B.json] [--skip-synthetic]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tabulate import tabulate


def cpu_kind() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fake_knn(y: np.ndarray, classes: int, rng: np.random.Generator) -> dict:
    """Top-1 predictions for 4 scales x 4 k: accuracy falls with scale, neighbouring k mostly agree."""
    preds = {}
    for s, acc in ((1.0, 0.93), (0.5, 0.9), (0.25, 0.8), (0.125, 0.55)):
        base = np.where(rng.random(len(y)) < acc, y, rng.integers(0, classes, len(y)))
        for k in (10, 20, 100, 200):
            flip = rng.random(len(y)) < 0.03
            preds[(s, k)] = np.where(flip, rng.integers(0, classes, len(y)), base)
    return preds


def record_stub(model: str, task: str, n: int, classes: int, val: str, k_report: int = 20) -> dict:
    return {"schema": "satbench.record/1", "id": os.urandom(6).hex(), "task": task, "model": model,
            "weights": {"source": "random", "seed": 0}, "protocol": {"name": "bench", "hash": "0" * 64},
            "dataset": {"name": "bench", "num_classes": classes, "split_hashes": {"train": "1" * 64, "val": val}},
            "metrics": {"n_val": n, "k_report": k_report}, "summary": {},
            "provenance": {"date": "2026-01-01T00:00:00+00:00"}}


class Timing(float):
    """Wall seconds (the float) with the process CPU seconds of the same call (``.cpu``): on a shared machine the
    CPU time is the steadier figure."""

    cpu: float = 0.0

    def __format__(self, spec: str) -> str:
        return f"{float(self):{spec}} ({self.cpu:{spec}} cpu)"


def timed(fn, *args, repeat: int = 1, **kw):
    """(best wall time over ``repeat`` calls, with its CPU time; the last result)."""
    best, out = None, None
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        out = fn(*args, **kw)
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        if best is None or wall < best:
            best = Timing(wall)
            best.cpu = cpu
    return best, out


def part1(args) -> None:
    from satbench.records.predictions import write_record_with_predictions
    from satbench.stats.compare import compare
    from satbench.stats.fields import classification_fields, knn_fields

    val = "a" * 64
    ucm_labels = None
    split = Path(args.data) / "val.txt"
    if split.is_file():
        names = [ln.strip().split("/")[-2] for ln in split.read_text().split() if ln.strip()]
        order = sorted(set(names))
        ucm_labels = np.array([order.index(c) for c in names])
    cases = [("UC Merced val (420)", 420, 21, "knn"), ("EuroSAT val (5,400)", 5400, 10, "knn"),
             ("fMoW val (53,000)", 53000, 62, "knn"), ("fMoW val (53,000)", 53000, 62, "linear")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, n, classes, task in cases:
            rng = np.random.default_rng(n)
            y = ucm_labels if (n == 420 and ucm_labels is not None) else np.sort(rng.integers(0, classes, n))
            pa, pb = fake_knn(y, classes, rng), fake_knn(y, classes, rng)
            if task == "knn":
                t_ci, fa = timed(knn_fields, y, pa, k_report=20, split_sha256=val, num_classes=classes,
                                 resamples=args.resamples, repeat=args.repeat)
                fb = knn_fields(y, pb, k_report=20, split_sha256=val, num_classes=classes, resamples=args.resamples)
                what = "kNN 4 scales x 4 k (16 vectors)"
            else:
                t_ci, fa = timed(classification_fields, y, pa[(1.0, 20)], split_sha256=val, num_classes=classes,
                                 resamples=args.resamples, repeat=args.repeat)
                fb = classification_fields(y, pb[(1.0, 20)], split_sha256=val, num_classes=classes,
                                           resamples=args.resamples)
                what = "linear top-1 (1 vector)"
            folder = Path(tmp) / f"{n}_{task}"
            a = write_record_with_predictions(fa.apply(record_stub("a", task, n, classes, val)), fa.arrays, classes,
                                              folder)
            b = write_record_with_predictions(fb.apply(record_stub("b", task, n, classes, val)), fb.arrays, classes,
                                              folder)
            t_cmp, cmp = timed(compare, str(a), str(b), resamples=args.resamples, repeat=args.repeat)
            size = a.with_name(a.stem + ".preds.npz").stat().st_size
            rows.append([name, what, f"{t_ci:.3f}", f"{t_cmp:.3f}", f"{size / 1024:.1f}", f"{size / n:.2f}"])
    print(f"Part 1: synthetic predictions, {args.resamples} resamples, best of {args.repeat}")
    print(tabulate(rows, headers=["val set", "record", "intervals s", "compare s", "sidecar KiB", "bytes/image"]))


@contextlib.contextmanager
def capture_knn_predictions():
    """Record top-1 predictions of every (view, k) that run_knn classifies (run_knn writes no sidecar yet)."""
    import torch

    import satbench.eval.knn_run as knn
    from satbench.eval.knn_search import knn_search, l2_normalize
    from satbench.eval.knn_vote import knn_vote

    captured: list = []
    original = knn.knn_classify

    def spy(train_feats, train_labels, test_feats, test_labels, ks, temperature, num_classes, *, backend="faiss",
            device=None):
        sims, idx = knn_search(l2_normalize(train_feats), l2_normalize(test_feats), max(ks),
                                   backend=backend, device=device)
        ytr = torch.as_tensor(list(train_labels))
        preds = {k: knn_vote(sims, idx, ytr, num_classes, k, temperature)[:, 0].numpy() for k in ks}
        captured.append((np.asarray(list(test_labels)), preds))
        return original(train_feats, train_labels, test_feats, test_labels, ks, temperature, num_classes,
                        backend=backend, device=device)

    knn.knn_classify = spy
    try:
        yield captured
    finally:
        knn.knn_classify = original


def part2(args) -> None:
    from satbench.cli.app import main as cli
    from satbench.io.atomic import atomic_write_json
    from satbench.records.predictions import write_sidecar
    from satbench.stats.compare import compare
    from satbench.stats.fields import knn_fields
    from satbench.cli.commands.compare import render_table

    datasets = ["ucm-mini"] + ([args.data] if Path(args.data).is_dir() else [])
    tmp = Path(tempfile.mkdtemp(prefix="bench_stats_"))
    os.environ["SATBENCH_CACHE"] = str(tmp / "cache")
    rows, tables = [], []
    for ds in datasets:
        res = tmp / f"res_{Path(ds).name}"
        paths = []
        for seed in (0, 1):
            base = ["run", "--task", "knn", "--model", "satdino-vit_small-16", "--weights", "random", "--seed",
                    str(seed), "--dataset", ds, "--no-progress", "--num-workers", "1"]
            argv = base + ["--results-dir", str(res)]
            with capture_knn_predictions() as captured:
                t0 = time.perf_counter()
                assert cli(argv) == 0
                t_cold = time.perf_counter() - t0
            (path,) = [p for p in res.glob("*.json") if p not in paths]
            rec = json.loads(path.read_text())
            m = rec["metrics"]
            if len(captured) != len(m["per_scale"]):  # one search per distinct view; UC Merced has no repeats
                raise SystemExit(f"captured {len(captured)} searches for {len(m['per_scale'])} scale entries")
            y = captured[0][0]
            preds = {(float(e["scale"]), k): captured[i][1][k] for i, e in enumerate(m["per_scale"]) for k in m["k"]}
            t_ci, fields = timed(knn_fields, y, preds, k_report=m["k_report"],
                                 split_sha256=rec["dataset"]["split_hashes"]["val"], num_classes=m["num_classes"],
                                 resamples=args.resamples)
            fields.check_against(rec["summary"])
            side = path.with_name(path.stem + ".preds.npz")
            rec["predictions"] = write_sidecar(side, fields.arrays, fields.num_classes)
            fields.apply(rec)
            atomic_write_json(path, rec)
            paths.append(path)
            if seed == 0:
                t0 = time.perf_counter()
                assert cli(base + ["--results-dir", str(tmp / "warm")]) == 0
                t_warm_main = time.perf_counter() - t0
                warm_rec = json.loads(sorted((tmp / "warm").glob("*.json"))[-1].read_text())
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "satbench.cli"] + base + ["--results-dir", str(tmp / "warm_cli")],
                               check=True, capture_output=True, env=dict(os.environ))
                t_warm_cli = time.perf_counter() - t0
                r = rec["summary"]
                rows.append([Path(ds).name, m["n_val"], f"{t_cold:.1f}", f"{warm_rec['timings']['total_s']:.3f}",
                             f"{t_warm_main:.2f}", f"{t_warm_cli:.1f}", f"{t_ci:.3f}", f"{side.stat().st_size / 1024:.1f}",
                             f"{r['top1_avg']:.2f} [{r['ci']['top1_avg'][0]:.2f}, {r['ci']['top1_avg'][1]:.2f}]"])
        t_cmp, cmp = timed(compare, str(paths[0]), str(paths[1]), resamples=args.resamples)
        rows[-1].append(f"{t_cmp:.3f}")
        tables.append(f"{Path(ds).name}: satbench compare seed0 seed1 ({t_cmp:.3f} s)\n{render_table(cmp)}")
    print("\nPart 2: satdino-vit_small-16 random init, seeds 0 and 1, satdino-knn-v1 (4 scales, k 10/20/100/200)")
    print(tabulate(rows, headers=["dataset", "val n", "cold run s", "warm run_knn s", "warm in-process run s",
                                  "warm CLI process s", "intervals s", "sidecar KiB", "seed 0 top-1 avg [95% CI]",
                                  "compare s"]))
    for t in tables:
        print("\n" + t)
    print(f"\n(scratch folder {tmp})")


def part3(args) -> None:
    """Time the statistics of two existing kNN records (with sidecars): intervals from A's sidecar, then compare."""
    from satbench.records.predictions import knn_key, load_record, predictions_for_record
    from satbench.stats.compare import compare
    from satbench.stats.fields import knn_fields

    a, b = args.records
    rec = load_record(a)
    pr = predictions_for_record(rec)
    m = rec["metrics"]
    preds = {(float(e["scale"]), k): pr.preds[knn_key(e["scale"], k)] for e in m["per_scale"] for k in m["k"]}
    t_ci, fields = timed(knn_fields, pr.y_true, preds, k_report=m["k_report"],
                         split_sha256=rec["dataset"]["split_hashes"]["val"], num_classes=m["num_classes"],
                         resamples=args.resamples, repeat=args.repeat)
    fields.check_against(rec["summary"])
    t_cmp, _ = timed(compare, a, b, resamples=args.resamples, repeat=args.repeat)
    print(f"\nPart 3: {Path(a).name}: {m['n_val']} val images, {len(m['per_scale'])} scales x {len(m['k'])} k, "
          f"{args.resamples} resamples, best of {args.repeat}")
    print(tabulate([["intervals (knn_fields)", f"{t_ci:.3f}"], ["compare A B (read + verify sidecars, bootstrap, "
                    "McNemar, Holm)", f"{t_cmp:.3f}"]], headers=["step", "seconds"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--resamples", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3, help="part 1: best of N timings")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--real", action="store_true", help="also run part 2 (real ViT-S/16 runs; minutes)")
    ap.add_argument("--data", default="/work/shared/data/uc_merced")
    ap.add_argument("--records", nargs=2, metavar=("A", "B"), default=None,
                    help="part 3: time the statistics of two existing kNN records with sidecars (e.g. part 2's)")
    ap.add_argument("--skip-synthetic", action="store_true", help="do not run part 1")
    args = ap.parse_args()
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_kind()} ({os.cpu_count()} logical cores visible, {args.threads} threads used), "
          f"numpy {np.__version__}, load average {os.getloadavg()[0]:.1f}")
    with threadpool_limits(args.threads):
        if not args.skip_synthetic:
            part1(args)
        if args.real:
            part2(args)
        if args.records:
            part3(args)


if __name__ == "__main__":
    main()
