"""`satbench suite` plans with the protocol the run will record (issue 27, item 3): a k list longer than the train
split is clipped by the kNN run (an override, so a different protocol hash); the plan derives it the same way
(:meth:`satbench.eval.task.Task.effective_protocol`), so a rerun skips the pair instead of writing another record."""

from __future__ import annotations

import json
import time

import pytest

from satbench.cli.app import main
from support.paths import CARDS

pytestmark = pytest.mark.usefixtures("one_thread")

ARGS = ["suite", "--model", "satdino-test-tiny", "--weights", "random", "--datasets", "ucm-mini", "--tasks", "knn",
        "--num-workers", "0", "--no-progress", "--no-leaderboard", "--set", "knn.scales=0.125",
        "--set", "knn.k=[5,500]"]  # ucm-mini's train split has 336 images: k 500 is clipped to 336


def test_a_clipped_k_is_planned_as_the_run_records_it_and_a_rerun_skips(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))
    res = tmp_path / "res"
    assert main([*ARGS, "--results-dir", str(res)]) == 0, capsys.readouterr().err
    capsys.readouterr()
    recs = [json.loads(p.read_text()) for p in sorted(res.glob("*.json"))]
    assert len(recs) == 1
    m = recs[0]["metrics"]
    assert m["k_clipped"] == {"requested": [5, 500], "used": [5, 336], "n_train": 336}
    assert recs[0]["protocol"]["overrides"]["k"] == [5, 336]
    t0 = time.perf_counter()
    for _ in range(2):  # every rerun used to run kNN again and write another record
        assert main([*ARGS, "--results-dir", str(res)]) == 0
        out = capsys.readouterr().out
        assert "suite: 0 run, 1 skipped" in out, out
    took = time.perf_counter() - t0
    assert len(list(res.glob("*.json"))) == 1
    print(f"two reruns took {took:.1f} s")
