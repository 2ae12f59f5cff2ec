"""The leaderboard and ``satbench compare`` on records written by the runners (tiny random ViT, a 5-class copy of the
bundled ucm-mini): a seeds aggregate stands for its members as ``mean ± sd (n=…)``; a multi-scale kNN run shows its
scale-robustness summaries with intervals; compare works on linear records and refuses runs on different train
subsets in one line."""

from __future__ import annotations

import dataclasses
import re
import shutil

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")

PROBE = dict(train_crop=32, val_resize=36, val_crop=32, batch_size=8, epochs=1, lr=0.01)


@pytest.fixture
def tiny(monkeypatch):
    import satbench.api as api
    from satbench.backbones.satdino import SatDINOViT
    from satbench.registry import get_card
    from satbench.weights import LoadedModel, WeightsInfo

    card = dataclasses.replace(get_card("satdino-vit_small-16"), name="test-satdino-tiny-d2", arch="vit_tiny",
                               embed_dim=192, feature_dim=192, depth=2, num_heads=3, weights={})
    torch.manual_seed(0)
    model = LoadedModel(SatDINOViT(embed_dim=192, depth=2, num_heads=3).eval(), card,
                        WeightsInfo(source="random", kind="random", seed=0))
    monkeypatch.setattr(api, "load", lambda *a, **k: model)


@pytest.fixture
def small(tmp_path, ucm_mini):
    """5 classes of ucm-mini as a ``uc_merced`` folder: 8 train and 2 val images per class."""
    root = tmp_path / "data" / "uc_merced"
    lines: dict[str, list[str]] = {"train": [], "val": []}
    for split, per in (("train", 8), ("val", 2)):
        seen: dict[int, int] = {}
        for s in ucm_mini.samples(split):
            if s.label < 5 and seen.get(s.label, 0) < per:
                seen[s.label] = seen.get(s.label, 0) + 1
                dst = root / "images" / s.path.parent.name / s.path.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(s.path, dst)
                lines[split].append(f"./{s.path.parent.name}/{s.path.name}")
    for split, ls in lines.items():
        (root / f"{split}.txt").write_text("\n".join(ls) + "\n")
    return root


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


def test_compare_works_on_linear_seed_records_and_refuses_other_train_subsets(tiny, small, tmp_path, capsys):
    import satbench
    from satbench.cli import main

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
