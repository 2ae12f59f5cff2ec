"""Concurrent writers: 4 processes writing records and sharing the feature cache lose and corrupt nothing."""

from __future__ import annotations

import json
import multiprocessing as mp
import os

import numpy as np
from support.concurrency_worker import N_PROC, PER_PROC, worker
from support.paths import CARDS


def test_four_processes_share_records_and_cache(tmp_path):
    ctx = mp.get_context("spawn")
    with ctx.Pool(N_PROC) as pool:  # a worker that cannot start must fail the test, not hang it
        done = pool.map_async(worker, [(str(tmp_path / "results"), str(tmp_path / "cache"), w)
                                       for w in range(N_PROC)]).get(timeout=600)
    assert sorted(done) == list(range(N_PROC))
    files = sorted((tmp_path / "results").glob("*.json"))
    assert len(files) == N_PROC * PER_PROC
    seen = {(json.loads(f.read_text())["metrics"]["worker"], json.loads(f.read_text())["metrics"]["i"]) for f in files}
    assert seen == {(w, i) for w in range(N_PROC) for i in range(PER_PROC)}
    assert not list((tmp_path / "results").glob(".*.tmp"))
    from satbench.eval.cache import FeatureCache

    cache = FeatureCache(tmp_path / "cache")
    assert len(cache.entries()) == 1 + N_PROC * PER_PROC
    for w in range(N_PROC):
        for i in range(PER_PROC):
            arr = cache.get({"model": "m", "worker": w, "i": i})
            assert arr is not None and (arr == w * 1000 + i).all()


def test_four_concurrent_knn_runs_share_the_feature_cache(tmp_path):
    """4 real `satbench run --task knn` processes at once on one cache and one results folder: 4 complete records with
    identical numbers, a consistent cache, and a later run that is served from the cache entirely."""
    import subprocess
    import sys

    cards = CARDS
    env = dict(os.environ, SATBENCH_HOME=str(tmp_path / "home"), SATBENCH_OFFLINE="1", SATBENCH_MODEL_CARDS=str(cards),
               OMP_NUM_THREADS="1")
    argv = [sys.executable, "-m", "satbench.cli", "run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random",
            "--scales", "0.25", "0.125", "--k", "5", "--no-progress", "--num-workers", "0",
            "--results-dir", str(tmp_path / "results")]
    procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env) for _ in range(N_PROC)]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    recs = [json.loads(f.read_text()) for f in sorted((tmp_path / "results").glob("*.json"))]
    assert len(recs) == N_PROC and len({r["id"] for r in recs}) == N_PROC
    assert len({json.dumps(r["summary"], sort_keys=True) for r in recs}) == 1
    from satbench.eval.cache import FeatureCache

    entries = FeatureCache(tmp_path / "home" / "cache" / "features").entries()
    assert len(entries) == 4  # 2 scales x 2 splits, whoever wrote them last
    for e in entries:
        assert np.load(e.path).shape == (e.meta["shape"][0], 192)
    again = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    last = max((tmp_path / "results").glob("*.json"), key=lambda p: p.stat().st_mtime)
    rec = json.loads(last.read_text())
    assert rec["summary"] == recs[0]["summary"]
    stats = json.dumps(rec)
    assert '"forward_images": 0' in stats, "the fifth run must be served from the cache"
