"""``satbench compare`` on records the runners write (tiny random ViT, a 5-class copy of the bundled ucm-mini): two
seeds of a linear probe pair up through their sidecars; runs on different train subsets are refused in one line."""

from __future__ import annotations

import pytest

from support.tiny_runs import PROBE, small_scene_copy, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny(monkeypatch):
    import satbench.api as api

    model = tiny_model()
    monkeypatch.setattr(api, "load", lambda *a, **k: model)


@pytest.fixture
def small(tmp_path, ucm_mini):
    """5 classes of ucm-mini as a ``uc_merced`` folder: 8 train and 2 val images per class."""
    return small_scene_copy(tmp_path / "data", ucm_mini)


def _common(small, res):
    return dict(model="satdino-vit_small-16", weights="random", dataset=str(small), results_dir=res, device="cpu",
                num_workers=0, progress=False, resamples=300)


def test_compare_works_on_linear_seed_records_and_refuses_other_train_subsets(tiny, small, tmp_path, capsys):
    import satbench
    from satbench.cli.app import main

    res = tmp_path / "res"
    agg = satbench.run("linear", seeds=[0, 1], output_dir=str(tmp_path / "out"), **_common(small, res), **PROBE)
    a, b = (m["_path"] for m in agg["_members"])
    capsys.readouterr()
    assert main(["compare", a, b, "--format", "json"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) >= 1 and rows[0]["task"] == "linear" and rows[0]["n"] == 10
    assert rows[0]["diff"] == pytest.approx(agg["_members"][0]["summary"]["top1"] - agg["_members"][1]["summary"]["top1"])
    assert 0.0 <= rows[0]["p_mcnemar"] <= 1.0
    # two kNN runs on different train subsets are not paired runs: one line, exit 2
    out = satbench.run("knn", shots=[2, 4], scales=[0.125], k=[1], **_common(small, tmp_path / "knn"))
    capsys.readouterr()
    assert main(["compare", out[0]["_path"], out[1]["_path"]]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("satbench: error:") and "train subset" in err[0], err
