"""`satbench plot` on the record of a real run: the prediction sidecar the kNN runner writes, the class names the
record carries (label order), both PNGs."""

from __future__ import annotations

import json

import pytest

from satbench.cli.app import main
from satbench.cli.commands.plot import class_names
from support.paths import CARDS


@pytest.fixture(autouse=True)
def _cards(monkeypatch):
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))


def test_plot_a_real_knn_run(tmp_path, capsys):
    res = tmp_path / "res"
    assert main(["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random", "--scales", "0.25",
                 "--k", "5", "--no-progress", "--num-workers", "0", "--results-dir", str(res)]) == 0
    (record,) = res.glob("*.json")
    rec = json.loads(record.read_text())
    assert rec["predictions"]["file"].endswith(".preds.npz") and (res / rec["predictions"]["file"]).is_file()
    names = class_names(rec, 21)
    assert names[:3] == ["agricultural", "airplane", "baseballdiamond"] and names == rec["dataset"]["classes"]
    capsys.readouterr()
    assert main(["plot", str(record), "--out", str(tmp_path / "plots")]) == 0
    pngs = sorted(p.name.rsplit(".", 2)[-2] for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == ["confusion", "per_class"]
    assert all((tmp_path / "plots" / p).stat().st_size > 10_000 for p in (tmp_path / "plots").iterdir())
