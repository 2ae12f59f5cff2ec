"""Every statistics option is bounded by its cost: refused at once, in one line that gives the limit."""

from __future__ import annotations

import time

import pytest

from satbench.cli.app import main
from satbench.errors import SatbenchError
from satbench.stats import budget
from support.paths import CARDS


@pytest.fixture(autouse=True)
def _cards(monkeypatch):
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))


@pytest.mark.parametrize("argv, pattern", [
    (["--task", "knn", "--resamples", "1000000000"], r"--resamples 1,000,000,000 is more than 1,000,000"),
    (["--task", "knn", "--train-fraction", "0.5", "--draws", "100000"], r"--draws: 100,000 repeats is more than 100"),
    (["--task", "knn", "--shots", "5", "1000000000"], r"--shots 1,000,000,000 is more than 100,000 images per class"),
    (["--task", "cached-linear", "--seeds", *map(str, range(101))], r"--seeds: 101 repeats is more than 100"),
])
def test_run_refuses_what_cannot_finish_at_once(argv, pattern, capsys):
    t0 = time.perf_counter()
    code = main(["run", "--model", "satdino-test-tiny", "--weights", "random", "--no-progress", *argv])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code != 0 and time.perf_counter() - t0 < 5
    assert len(err) == 1 and err[0].startswith("satbench: error:"), err
    assert pytest.importorskip("re").search(pattern, err[0]), err[0]


def test_the_bounds_follow_the_val_size_and_the_evaluations():
    budget.check_resamples(10_000, n_val=53_000, evaluations=32)  # fMoW-sized default: fine
    with pytest.raises(SatbenchError, match=r"at most 188,679 resamples finish in minutes"):
        budget.check_resamples(1_000_000, n_val=53_000)
    with pytest.raises(SatbenchError, match=r"at most 268,435 resamples fit the 2 GiB bound"):
        budget.check_resamples(1_000_000, evaluations=1000)
