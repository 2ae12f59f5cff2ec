"""Sharded extraction under torchrun (gloo on CPU): every rank extracts a contiguous, batch-aligned shard, rank 0
gathers in sample order; the result equals the single-process run bit for bit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from satbench.distributed import shard_bounds
from satbench.resources import bundled_data_dir

REPO = Path(__file__).resolve().parents[1]
CARDS = REPO / "tests" / "fixtures" / "cards"
UCM = bundled_data_dir() / "ucm-mini"


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "SATBENCH_MODEL_CARDS": str(CARDS), "SATBENCH_HOME": str(tmp_path / "home"),
            "SATBENCH_RESULTS": str(tmp_path / "res"), "OMP_NUM_THREADS": "1", "SATBENCH_OFFLINE": "1"}


def _torchrun(nproc: int, args: list[str], env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "satbench.cli", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def test_shards_are_contiguous_batch_aligned_and_cover_everything():
    for n in (1, 7, 84, 336, 1000):
        for batch in (1, 16, 64):
            for world in (1, 2, 3, 8):
                bounds = [shard_bounds(n, batch, r, world) for r in range(world)]
                assert bounds[0][0] == 0 and bounds[-1][1] == n
                assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous, in rank order
                assert all(lo % batch == 0 for lo, _ in bounds)  # every shard starts at a batch boundary


def test_extract_on_two_processes_equals_one_process_bit_for_bit(tmp_path):
    """84 val images in batches of 16 (6 batches, the last one of 4): an uneven split over 2 ranks."""
    env = _env(tmp_path)
    args = ["extract", "--model", "satdino-test-tiny", "--weights", "random", "--images", str(UCM / "val.txt"),
            "--size", "32", "--batch-size", "16", "--no-progress", "--device", "cpu"]
    one = subprocess.run([sys.executable, "-m", "satbench.cli", *args, "--output", str(tmp_path / "one.npy")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = _torchrun(2, args + ["--output", str(tmp_path / "two.npy")], env)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = np.load(tmp_path / "one.npy"), np.load(tmp_path / "two.npy")
    assert a.shape == (84, 192) and np.array_equal(a, b)  # bit for bit, rows in split order
    side = json.loads((tmp_path / "two.json").read_text())
    assert side["world_size"] == 2 and side["forward_images"] == 84  # the work of both ranks, counted once
    assert "on 2 processes" in two.stdout and two.stdout.count("wrote ") == 1  # rank 0 alone writes
