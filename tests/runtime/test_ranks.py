"""torchrun's environment is read in one place (satbench/runtime/ranks.py), without torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from satbench.errors import SatbenchError
from satbench.runtime.ranks import is_job_main, torchrun_rank, torchrun_world_size


def test_rank_and_world_size_outside_and_inside_torchrun(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert (torchrun_rank(), torchrun_world_size(), is_job_main()) == (0, 1, True)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert (torchrun_rank(), torchrun_world_size(), is_job_main()) == (3, 4, False)


def test_a_malformed_rank_is_one_line_and_counts_as_main_for_writing(monkeypatch):
    monkeypatch.setenv("RANK", "one")
    with pytest.raises(SatbenchError, match=r"RANK='one' is not a whole number"):
        torchrun_rank()
    assert is_job_main()


def test_reading_the_rank_loads_no_torch():
    code = "import sys; from satbench.runtime.ranks import is_job_main; is_job_main(); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
