"""Listings and read-only commands start in well under a second: they import neither torch nor timm.

Each command runs in a fresh interpreter (the way a user runs it) and the test fails naming the command that pulled in
torch. bench/bench_startup.py measures the wall-clock times.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from satbench.records.predictions import pred_name, write_record_with_predictions
from support.paths import LEADERBOARD_FIXTURES, REPO

CHECK = ("import sys; from satbench.cli.app import main; code = main(sys.argv[1:]); "
         "heavy = [m for m in ('torch', 'timm') if m in sys.modules]; "
         "assert not heavy, f'{sys.argv[1:]} imported {heavy}'; sys.exit(code)")


def _run(argv: list[str], tmp_path, results) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SATBENCH_HOME": str(tmp_path / "home"),
           "SATBENCH_RESULTS": str(results), "SATBENCH_OFFLINE": "1"}
    env.pop("SATBENCH_MODEL_CARDS", None)
    env.pop("SATBENCH_PLUGINS", None)
    return subprocess.run([sys.executable, "-c", CHECK, *argv], env=env, capture_output=True, text=True, cwd=tmp_path)


@pytest.mark.parametrize("argv", [
    ["--help"], ["run", "--help"], ["run", "--task", "knn", "--help"], ["run", "--task", "cached-linear", "--help"],
    ["models"], ["models", "--format", "csv"], ["models", "--families"], ["results", "ls"], ["leaderboard", "--format", "md"],
    ["leaderboard", "--format", "csv"], ["compare", "--help"], ["suite", "--help"],
], ids=" ".join)
def test_listings_import_no_torch(argv, tmp_path):
    r = _run(argv, tmp_path, LEADERBOARD_FIXTURES / "records")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()


def test_run_help_shows_the_shared_options_and_the_tasks(tmp_path):
    out = _run(["run", "--help"], tmp_path, tmp_path / "r").stdout
    for flag in ("--model", "--weights", "--dataset", "--device", "--results-dir"):
        assert flag in out
    assert "knn" in out and "cached-linear" in out and "segmentation" in out


def test_compare_of_two_records_imports_no_torch(tmp_path):
    val, train, y = hashlib.sha256(b"val").hexdigest(), hashlib.sha256(b"train").hexdigest(), np.arange(20) % 4
    paths = []
    for model, shift in (("a", 0), ("b", 5)):
        rec = {"schema": "satbench.record/1", "id": hashlib.sha256(model.encode()).hexdigest()[:12], "task": "linear",
               "model": model, "weights": {"source": "random", "seed": 0},
               "protocol": {"name": "p", "hash": "a" * 64, "overrides": {}},
               "dataset": {"name": "toy", "num_classes": 4, "split_hashes": {"train": train, "val": val}},
               "metrics": {"n_val": 20}, "summary": {}, "provenance": {"date": "2026-01-02T00:00:00+00:00"}}
        pred = np.where(np.arange(20) < 15 - shift, y, (y + 1) % 4)
        paths.append(str(write_record_with_predictions(rec, {"y_true": y, pred_name("top1"): pred}, 4, tmp_path)))
    r = _run(["compare", *paths, "--resamples", "200"], tmp_path, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "A - B" in r.stdout
