"""The offline demo: a short SatDINO pretraining on the bundled real images beats random init in kNN (slow)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_demo_pretraining_beats_random_init_in_knn(tmp_path):
    r = subprocess.run([sys.executable, "-m", "satbench.cli", "demo", "--output", str(tmp_path / "demo"),
                        "--results-dir", str(tmp_path / "res"), "--no-progress",
                        "--set", "epochs=5", "--set", "warmup_epochs=1", "--set", "warmup_teacher_temp_epochs=2"],
                       capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stderr[-2000:]
    recs = [json.loads(p.read_text()) for p in (tmp_path / "res").rglob("*.json")]
    by = {rec["extra"]["demo"]: rec["summary"]["top1_avg"] for rec in recs}
    print(r.stdout)
    assert set(by) == {"pretrained (demo)", "random init"}
    assert by["pretrained (demo)"] > by["random init"], by
