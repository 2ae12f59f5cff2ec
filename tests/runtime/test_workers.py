"""A DataLoader worker the kernel kills (SIGKILL, as the out-of-memory killer sends) is named, with the hint, by
``satbench run`` and ``satbench suite`` instead of ``internal error: RuntimeError`` (issue 27, item 4)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from satbench.cli.app import main
from satbench.runtime.workers import WorkerKilledError, worker_death
from support.paths import CARDS

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def killed_workers(monkeypatch):
    """Every DataLoader worker SIGKILLs itself on its first image (the main process decodes normally)."""
    import torch.utils.data

    import satbench.eval.extract as X

    real = X.read_rgb

    def read_rgb(*a, **k):
        if torch.utils.data.get_worker_info() is not None:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*a, **k)

    monkeypatch.setattr(X, "read_rgb", read_rgb)
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))


HINT = "rerun with fewer --num-workers (0 loads in the main process) or a smaller --batch-size"


def test_run_names_a_killed_worker(capsys, tmp_path, killed_workers):
    t0 = time.perf_counter()
    rc = main(["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random", "--scales", "0.125",
               "--k", "5", "--num-workers", "1", "--no-progress", "--results-dir", str(tmp_path / "res")])
    took = time.perf_counter() - t0
    err = capsys.readouterr().err
    assert rc == 3, err
    assert "internal error" not in err and "a data-loading worker was killed (DataLoader worker (pid" in err
    assert "out-of-memory killer" in err and HINT in err
    assert len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "res").glob("*.json")) if (tmp_path / "res").exists() else True
    assert took < 60, took


def test_suite_names_a_killed_worker_for_the_pair(capsys, tmp_path, killed_workers):
    rc = main(["suite", "--model", "satdino-test-tiny", "--weights", "random", "--datasets", "ucm-mini", "--tasks",
               "knn", "--num-workers", "1", "--no-progress", "--no-leaderboard", "--set", "knn.scales=0.125",
               "--set", "knn.k=5", "--results-dir", str(tmp_path / "res")])
    out, err = capsys.readouterr()
    assert rc != 0
    text = out + err
    assert "internal error" not in text and "a data-loading worker was killed" in text and HINT in text


@pytest.mark.parametrize("message, found", [
    ("DataLoader worker (pid 1234) is killed by signal: Killed. ", "out-of-memory killer"),
    ("DataLoader worker (pid(s) 12, 13) exited unexpectedly", "out-of-memory killer"),
    ("DataLoader worker (pid 5) is killed by signal: Bus error. It is possible that dataloader's workers are out of "
     "shared memory. Please try to raise your shared memory limit.", "/dev/shm"),
])
def test_the_messages_pytorch_writes(message, found):
    err = worker_death(RuntimeError(message))
    assert isinstance(err, WorkerKilledError) and found in str(err) and HINT in str(err)
    wrapped = ValueError("outer")
    wrapped.__cause__ = RuntimeError(message)
    assert worker_death(wrapped) is not None


def test_other_errors_are_not_renamed():
    assert worker_death(RuntimeError("CUDA out of memory")) is None and worker_death(ValueError("x")) is None
