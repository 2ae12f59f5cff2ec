"""The one device parser (satbench/runtime/device.py): the accepted device strings are defined once, and the command line's
``--device`` check (satbench/config/argtypes.py) uses that definition without loading torch."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from satbench.config import argtypes
from satbench.runtime.device import DEVICE_CHOICES, is_device_spec, parse_device
from satbench.errors import SatbenchError
from support.paths import REPO


@pytest.mark.parametrize("spec", ["meta", "gpu", "cuda:", "cuda:x", "CPU", " cpu", "cpu ", "mps", "cuda:0:1", ""])
def test_bad_device_strings_are_refused_alike(spec):
    assert not is_device_spec(spec)
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(f"expected {DEVICE_CHOICES}, got {spec!r}")):
        argtypes.device(spec)
    with pytest.raises(SatbenchError, match=re.escape(f"unknown device {spec!r} (expected {DEVICE_CHOICES})")):
        parse_device(spec)


@pytest.mark.parametrize("spec", ["auto", "cpu", "cuda", "cuda:0", "cuda:12"])
def test_good_device_strings_pass_the_command_line(spec):
    assert is_device_spec(spec) and argtypes.device(spec) == spec


def test_cpu_and_auto_resolve():
    assert parse_device("cpu").type == "cpu" and parse_device(None).type in ("cpu", "cuda")


def test_the_device_pattern_is_defined_once():
    homes = [p.relative_to(REPO).as_posix() for p in sorted((REPO / "satbench").rglob("*.py"))
             if re.search(r"cuda:\\d", p.read_text())]
    assert homes == ["satbench/runtime/device.py"], homes


def test_the_command_line_checks_the_device_without_torch():
    code = ("import sys; from satbench.config import argtypes; argtypes.device('cuda:1'); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, env={"PYTHONPATH": str(REPO)})


def test_gpu_runs_get_at_least_four_loader_workers(monkeypatch):
    """A run that does not choose --num-workers keeps the task's default on the CPU; on a GPU it gets at least 4
    (the CPU count allowing), so decoding keeps up with the device."""
    import torch

    from satbench.runtime import device as dv

    assert dv.default_num_workers(1, "cpu") == 1 and dv.default_num_workers(2, "cpu") == 2
    monkeypatch.setattr(dv, "parse_device", lambda d=None: torch.device("cuda"))
    monkeypatch.setattr(dv.os, "cpu_count", lambda: 16)
    assert dv.default_num_workers(1, "cuda") == 4 and dv.default_num_workers(6, "cuda") == 6
    monkeypatch.setattr(dv.os, "cpu_count", lambda: 2)
    assert dv.default_num_workers(1, "cuda") == 2
