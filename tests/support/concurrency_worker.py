"""Worker of the concurrency test: a module of its own, so that spawned processes can import it (a function of a test
module imported with --import-mode=importlib cannot be found by name in a child process)."""

from __future__ import annotations

import os

import numpy as np

N_PROC = 4
PER_PROC = 12


def worker(args):
    results_dir, cache_dir, wid = args
    os.environ["SATBENCH_OFFLINE"] = "1"
    from satbench.eval.cache import FeatureCache
    from satbench.records.results import make_record, write_record

    cache = FeatureCache(cache_dir)
    shared_key = {"model": "m", "view": "shared"}
    shared = np.arange(4000, dtype=np.float32).reshape(100, 40)  # every worker writes identical content
    for i in range(PER_PROC):
        cache.put(shared_key, shared)
        got = cache.get(shared_key)
        assert got is None or np.array_equal(got, shared), "a reader saw a partial or foreign array"
        own = np.full((10, 4), wid * 1000 + i, dtype=np.float32)
        cache.put({"model": "m", "worker": wid, "i": i}, own)
        rec = make_record(task="knn", model="m", weights={"sha256": "x"}, protocol={"name": "p", "hash": "h"},
                          dataset={"name": "d"}, metrics={"worker": wid, "i": i})
        rec["provenance"]["date"] = "2026-01-01T00:00:00+00:00"  # same timestamp for all: names must still not collide
        write_record(rec, results_dir)
    return wid
