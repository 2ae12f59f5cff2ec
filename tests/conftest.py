"""Shared fixtures. Tests run offline on data inside the repository (the bundled ucm-mini subset)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

# The tests mirror the package (tests/eval/test_knn.py tests satbench/eval/knn_run.py) and are imported with
# --import-mode=importlib, so shared helpers are imported from tests/ itself: `support` (paths, loopback server,
# leaderboard record builders) and `bad_inputs` (the bad-input corpus).
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("SATBENCH_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own SATBENCH_HOME / cache / results folder and no network."""
    monkeypatch.setenv("SATBENCH_HOME", str(tmp_path / "satbench_home"))
    monkeypatch.setenv("SATBENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("SATBENCH_CACHE", raising=False)
    monkeypatch.setenv("SATBENCH_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield


def _single_thread():
    """Tiny models run much faster and steadier on one intra-op thread on the shared 2-core test machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# Opt in per test module with ``pytestmark = pytest.mark.usefixtures("one_thread")`` (or ``one_thread_module``
# where module-scoped fixtures train models).
one_thread = pytest.fixture(name="one_thread")(_single_thread)
one_thread_module = pytest.fixture(name="one_thread_module", scope="module")(_single_thread)


@pytest.fixture
def ucm_mini():
    from satbench.data.scene import open_scene_dataset

    return open_scene_dataset("ucm-mini")
