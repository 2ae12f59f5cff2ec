"""Leaderboard tables of records written by the runners (tiny random ViT, a 5-class copy of the bundled ucm-mini): a
seeds aggregate stands for its members as ``mean ± sd (n=…)`` with the seed count; a multi-scale kNN run shows its
scale-robustness summaries with their intervals."""

from __future__ import annotations

import re

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


def test_leaderboard_shows_mean_sd_and_seed_count_and_knn_robustness(tiny, small, tmp_path):
    import satbench
    from satbench.leaderboard import build_tables, render_document

    res = tmp_path / "res"
    agg = satbench.run("linear", seeds=[0, 1, 2], output_dir=str(tmp_path / "out"), **_common(small, res), **PROBE)
    knn = satbench.run("knn", scales=[1.0, 0.25, 0.125], k=[1, 3], native_size=64, **_common(small, res))
    s = agg["summary"]["seeds"]
    records = satbench.read_records(res)
    assert len(records) == 5  # 3 seeds + their aggregate + the kNN run
    doc = render_document(build_tables(records), "md")
    linear = doc[doc.index("### Linear"):] if "### Linear" in doc else doc
    assert f"{s['mean']:.2f} ± {s['std']:.2f} (n=3)" in linear
    assert "3 seeds" in linear  # the settings column names the count
    for m in agg["_members"]:  # the members are not shown beside their aggregate
        assert f"{m['summary']['top1']:.2f}" not in re.sub(r"\d+\.\d+ ± \d+\.\d+ \(n=3\)", "", linear.split("###")[1])
    rob, ci = knn["summary"]["robustness"], knn["summary"]["ci"]
    assert rob["worst_scale_top1"] == min(knn["summary"]["top1_per_scale"].values())
    per_scale = doc[doc.index("per scale"):]
    assert "worst scale" in per_scale and "drop to smallest" in per_scale and "AUC log2 scale" in per_scale
    for name in ("worst_scale_top1", "drop_to_smallest_scale", "auc_log2_scale"):
        lo, hi = ci[name]
        assert lo <= rob[name] <= hi
        half = (hi - lo) / 2
        assert f"{rob[name]:.2f} ± {half:.2f}" in per_scale
