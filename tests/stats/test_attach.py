"""satbench.stats.attach: the statistics options are refused in one line before any work when a task cannot honour
them; segmentation's per-image confusion counts equal mmseg's own areas; (slow) a real segmentation run keeps them in a
hashed sidecar with the mIoU interval, and ``--seeds`` repeats it."""

from __future__ import annotations

import json
import numpy as np
import pytest

from support.seg import CARD, FIX, SMALL


# ---------------------------------------------------------------------------------------------------------------------
# Options: refused before any work (no dataset opened, no model loaded)
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task,kw,pattern", [
    ("knn", dict(seeds=[0, 1]), r"--seeds applies to the trained probes .* task knn has no training seed"),
    ("linear", dict(train_fraction=[0.1]), r"--train-fraction applies to tasks knn and cached-linear, not linear"),
    ("finetune", dict(shots=[5], draws=2), r"--shots, --draws apply to tasks knn and cached-linear, not finetune"),
    ("cached-linear", dict(seeds=[0, 1], train_fraction=[0.5]), r"--seeds and --train-fraction/--shots cannot be"),
    ("knn", dict(draws=2), r"--draws / --subset-seed need --train-fraction or --shots"),
    ("knn", dict(train_fraction=[0.0]), r"train fractions must be numbers in \(0, 1\]"),
    ("knn", dict(train_fraction=[True]), r"train fractions must be numbers in \(0, 1\]"),
    ("knn", dict(shots=[0]), r"shots must be positive integers"),
    ("linear", dict(seeds=[0, 0]), r"seeds lists a value twice"),
    ("linear", dict(seeds=[-1]), r"seeds must be non-negative integers"),
    ("linear", dict(resamples=0), r"resamples must be a positive integer"),
])
def test_impossible_statistics_options_are_refused_before_any_work(task, kw, pattern, monkeypatch, tmp_path):
    import satbench
    import satbench.api as api
    from satbench.errors import SatbenchError

    def no_work(*a, **k):
        raise AssertionError("work started before the options were checked")

    monkeypatch.setattr(api, "_dataset", no_work)
    monkeypatch.setattr(api, "load", no_work)
    with pytest.raises(SatbenchError, match=pattern):
        satbench.run(task, weights="random", results_dir=tmp_path / "res", **kw)
    assert not (tmp_path / "res").exists() or not list((tmp_path / "res").iterdir())


def test_options_from_task_options_and_keywords_are_normalised():
    from satbench.stats.attach import check_options
    from satbench.eval.task import get_task

    extra = {"train_fraction": (0.1, 1), "shots": 5, "draws": 3}
    assert check_options(get_task("knn"), extra, None) is None
    assert extra == {"train_fraction": [0.1, 1.0], "shots": [5], "draws": 3}
    assert check_options(get_task("segmentation"), {}, (2, 0)) == [2, 0]


# ---------------------------------------------------------------------------------------------------------------------
# Segmentation: per-image confusion counts
# ---------------------------------------------------------------------------------------------------------------------
def test_image_confusion_sums_to_mmsegs_areas():
    pytest.importorskip("mmseg")
    import torch
    from mmseg.evaluation.metrics import IoUMetric

    from satbench.seg.metric import image_confusion

    g = torch.Generator().manual_seed(0)
    c, ignore = 6, 255
    total = np.zeros((c, c), dtype=np.int64)
    areas = [torch.zeros(c, dtype=torch.float64) for _ in range(4)]
    for _ in range(5):
        label = torch.randint(0, c, (17, 23), generator=g)
        label[torch.rand(17, 23, generator=g) < 0.1] = ignore
        pred = torch.randint(0, c, (17, 23), generator=g)
        cm = image_confusion(pred, label, c, ignore)
        assert cm.dtype == np.int64 and cm.sum() == int((label != ignore).sum())
        total += cm
        for i, a in enumerate(IoUMetric.intersect_and_union(pred, label, c, ignore)):
            areas[i] += a.double()
    inter, union, area_pred, area_label = (a.numpy() for a in areas)
    assert np.array_equal(np.diag(total), inter)
    assert np.array_equal(total.sum(axis=0), area_pred) and np.array_equal(total.sum(axis=1), area_label)
    assert np.array_equal(total.sum(axis=0) + total.sum(axis=1) - np.diag(total), union)


@pytest.mark.slow  # two tiny mmseg trainings (2 iterations each, ~30-60 s on the shared machine)
def test_segmentation_seeds_keep_per_image_confusions_and_the_miou_interval(tmp_path, capsys):
    pytest.importorskip("mmseg")
    from satbench.cli.app import main
    from satbench.records.predictions import predictions_for_record
    from satbench.stats.bootstrap import miou_percent

    res, wd = tmp_path / "res", tmp_path / "wd"
    assert main(["run", "--task", "segmentation", "--model", CARD,
                 "--weights", "random", "--dataset", str(FIX / "potsdam"), "--crop", "224", "--seg-batch", "2",
                 "--num-workers", "0", "--work-dir", str(wd), "--results-dir", str(res), "--no-progress",
                 "--iters", "2", "--seeds", "0", "1", "--resamples", "500", "--seg-cfg-options", *SMALL]) == 0
    out = capsys.readouterr().out
    assert "2 seeds" in out and "mIoU" in out
    recs = [json.loads(p.read_text()) | {"_path": str(p)} for p in sorted(res.glob("*.json"))]
    members = [r for r in recs if not r["extra"].get("aggregate_of")]
    (agg,) = [r for r in recs if r["extra"].get("aggregate_of") == "seeds"]
    assert len(members) == 2 and (wd / "seed0").is_dir() and (wd / "seed1").is_dir()
    for r in members:
        p = predictions_for_record(r)  # sha256 checked
        assert p.confusion.ndim == 3 and p.confusion.shape[0] == r["metrics"]["n_val"] == 1
        assert miou_percent(p.confusion.sum(axis=0)) == pytest.approx(r["summary"]["mIoU"], abs=0.005)
        lo, hi = r["summary"]["ci"]["mIoU"]
        assert lo <= hi and r["metrics"]["statistics"]["bootstrap"]["resamples"] == 500
    assert agg["summary"]["seeds"]["n"] == 2
    assert agg["summary"]["mIoU"] == pytest.approx(np.mean([m["summary"]["mIoU"] for m in members]))
