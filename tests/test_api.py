"""The public Python API (satbench/__init__.py -> satbench/api.py): the README's example runs as written, and the
API is one import away without the heavy libraries."""

from __future__ import annotations

import re
import subprocess
import sys
from support.paths import REPO

README = REPO / "README.md"


def test_readme_python_api_example_runs(capsys):
    text = README.read_text()
    section = text[text.index("## Python API"):]
    block = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 (our own documentation)
    out = capsys.readouterr().out
    assert "(84, 384)" in out and "torch.Size([2, 384])" in out and "'scales': [0.25]" in out
    record = namespace["record"]
    assert record.task == "knn" and record.summary["k"] == 20 and "satdino-knn-v1" in out


def test_import_satbench_is_light():
    """`import satbench` and its API names cost no torch, mmseg, matplotlib or faiss import until used."""
    code = ("import sys, satbench; heavy = [m for m in ('torch', 'mmseg', 'mmengine', 'matplotlib', 'faiss', 'pandas') "
            "if m in sys.modules]; print(heavy); assert callable(satbench.run); print(satbench.__version__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "[]", out.stdout


def test_run_refuses_unknown_protocol_parameters_before_any_work():
    import pytest

    import satbench
    from satbench.errors import ProtocolError

    with pytest.raises(ProtocolError, match="unknown key temprature"):
        satbench.run("knn", weights="random", temprature=0.1, write=False)
