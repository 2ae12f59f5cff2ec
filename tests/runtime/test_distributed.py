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

from satbench.runtime.distributed import shard_bounds
from satbench.runtime.resources import bundled_data_dir
from support.paths import REPO

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


@pytest.mark.slow
@pytest.mark.parametrize("task", ["knn", "cached-linear"])
def test_knn_and_cached_linear_on_two_processes_equal_one_process(task, tmp_path):
    """One record, written by rank 0, with world_size 2 and exactly the single-process numbers (an uneven split:
    336 train / 84 val images in batches of 48); a cache written by the sharded run serves a single-process run."""
    env = _env(tmp_path)
    extra = ["--scales", "0.25", "0.125", "--k", "5", "20"] if task == "knn" else ["--epochs", "3"]
    args = ["run", "--task", task, "--model", "satdino-test-tiny", "--weights", "random", "--no-progress",
            "--batch-size", "48", "--num-workers", "0", "--device", "cpu", *extra]
    one = subprocess.run([sys.executable, "-m", "satbench.cli", *args, "--no-cache", "--results-dir",
                          str(tmp_path / "one")], env=env, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr
    two = _torchrun(2, args + ["--results-dir", str(tmp_path / "two")], env)
    assert two.returncode == 0, two.stderr[-2000:]
    (a,), (b,) = [[json.loads(p.read_text()) for p in (tmp_path / d).glob("*.json")] for d in ("one", "two")]
    world = b["extra"]["world_size"]
    assert world == 2 and a["extra"]["world_size"] == 1
    assert a["metrics"] == b["metrics"] and a["summary"] == b["summary"]  # bit for bit, every scale and k
    again = subprocess.run([sys.executable, "-m", "satbench.cli", *args, "--results-dir", str(tmp_path / "three")],
                           env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    (c,) = [json.loads(p.read_text()) for p in (tmp_path / "three").glob("*.json")]
    extraction = c["extra"].get("extraction") or c["extra"].get("extract")
    assert extraction["forward_images"] == 0 and c["metrics"] == a["metrics"]  # served by the sharded run's cache


@pytest.mark.slow
def test_a_failing_rank_ends_the_job_with_one_line_and_no_record(tmp_path):
    """A damaged image in rank 1's shard only: rank 1 stops with one line naming it, torchrun ends rank 0 (waiting for
    the gather), and no record is written."""
    import shutil

    data = tmp_path / "ucm_copy"
    shutil.copytree(UCM, data)
    val = (data / "val.txt").read_text().split()
    victim = data / "images" / val[60][2:]  # batch 48: rank 0 extracts val[0:48], rank 1 val[48:84]
    victim.write_bytes(b"not a jpeg")
    args = ["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random", "--no-progress",
            "--scales", "0.125", "--k", "5", "--device", "cpu", "--batch-size", "48", "--num-workers", "0",
            "--dataset", str(data), "--native-size", "256", "--normalization", "uc_merced",
            "--results-dir", str(tmp_path / "res")]
    proc = _torchrun(2, args, _env(tmp_path), timeout=300)
    assert proc.returncode != 0
    assert f"satbench: error: image {victim} is not a readable image" in proc.stderr, proc.stderr[-1500:]
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").glob("*.json"))


def test_torchrun_plumbing_has_one_home():
    """Only satbench/runtime/ranks.py reads WORLD_SIZE or RANK, and only satbench/runtime/distributed.py starts a process
    group (the segmentation runner, the results writer and the lock included)."""
    import ast

    offenders = []
    for path in sorted((REPO / "satbench").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in ("WORLD_SIZE", "RANK") and rel != "satbench/runtime/ranks.py":
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} reads {node.value}")
            if (isinstance(node, ast.Attribute) and node.attr == "init_process_group"
                    and rel != "satbench/runtime/distributed.py"):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} starts a process group")
    assert not offenders, offenders


def test_rank_is_read_like_the_world_size(monkeypatch):
    from satbench.runtime.distributed import torchrun_rank, torchrun_world_size
    from satbench.errors import SatbenchError

    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert torchrun_rank() == 0 and torchrun_world_size() == 1
    monkeypatch.setenv("RANK", "3")
    assert torchrun_rank() == 3
    monkeypatch.setenv("RANK", "three")
    with pytest.raises(SatbenchError, match=r"RANK='three' is not a whole number"):
        torchrun_rank()


def test_join_process_group_joins_once(monkeypatch):
    """A one-process gloo job over loopback: joined from the torchrun environment, a second call is a no-op."""
    import socket

    import torch.distributed as dist

    from satbench.runtime.distributed import join_process_group

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "1", "RANK": "0"}.items():
        monkeypatch.setenv(k, v)
    assert not dist.is_initialized()
    try:
        join_process_group("gloo")
        assert dist.is_initialized() and dist.get_backend() == "gloo" and dist.get_world_size() == 1
        join_process_group("gloo")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.slow
def test_corrupted_knn_on_two_processes_equals_one_process(tmp_path):
    """--corruptions under torchrun: each rank corrupts its shard with the images' split indices, so the corruption
    block (every condition, McNemar, intervals) and the per-image corrupted predictions in the sidecar are the
    single-process ones bit for bit (an uneven split: 84 val images in batches of 48, rank 1 takes 36)."""
    env = _env(tmp_path)
    args = ["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random", "--no-progress",
            "--batch-size", "48", "--num-workers", "0", "--device", "cpu", "--scales", "0.125", "--k", "5",
            "--corruptions", "gaussian_noise", "clouds", "motion_blur", "--severities", "2", "3", "--resamples", "200",
            "--no-cache"]
    one = subprocess.run([sys.executable, "-m", "satbench.cli", *args, "--results-dir", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr
    two = _torchrun(2, args + ["--results-dir", str(tmp_path / "two")], env)
    assert two.returncode == 0, two.stderr[-2000:]
    (a,), (b,) = [[json.loads(p.read_text()) for p in (tmp_path / d).glob("*.json")] for d in ("one", "two")]
    assert b["extra"]["world_size"] == 2 and b["extra"]["corruptions"]["extraction"]["forward_images"] == 6 * 84
    assert a["metrics"]["corruptions"] == b["metrics"]["corruptions"] and a["summary"] == b["summary"]
    (pa,), (pb,) = [list((tmp_path / d).glob("*.preds.npz")) for d in ("one", "two")]
    with np.load(pa) as za, np.load(pb) as zb:
        names = sorted(n for n in za.files if n.startswith("pred__c."))
        assert len(names) == 6 and sorted(n for n in zb.files if n.startswith("pred__c.")) == names
        assert all(np.array_equal(za[n], zb[n]) for n in names)
        clean = za["pred__knn_s0.125_k5"]
        assert not np.array_equal(za["pred__c.gaussian_noise.3.knn_s0.125_k5"], clean)  # the corruption did something
