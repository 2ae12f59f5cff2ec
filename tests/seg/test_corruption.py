"""``satbench run --task segmentation --corruptions``: a tiny real training on the fixture tiles (val = 4 real tiles),
then the val split under gaussian_noise and jpeg at severities 1 and 5. The clean path of the corruption pass equals
the runner's own clean validation image by image; the block's figures are recomputed from the per-image confusions."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from support.seg import CARD, FIX, SMALL

pytest.importorskip("mmseg")

pytestmark = pytest.mark.usefixtures("one_thread_module")

RESAMPLES = 400


def _data(base):
    """The potsdam fixture with its 3 train tiles also in val (4 val tiles: a bootstrap with something to resample)."""
    root = base / "potsdam"
    shutil.copytree(FIX / "potsdam", root)
    for kind in ("img_dir", "ann_dir"):
        for p in (root / kind / "train").glob("*.png"):
            shutil.copy(p, root / kind / "val" / p.name)
    return root


def _common(root, wd, res):
    return ["run", "--task", "segmentation", "--model", CARD, "--weights", "random", "--dataset", str(root),
            "--crop", "224", "--seg-batch", "2", "--num-workers", "0", "--work-dir", str(wd), "--results-dir",
            str(res), "--no-progress", "--iters", "2", "--resamples", str(RESAMPLES), "--seg-cfg-options", *SMALL]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One run with --corruptions (capturing, inside it, the runner's clean per-image confusions, the corruption
    path's clean pass and the corrupted passes), one without."""
    import satbench.seg.runner as seg_runner
    from satbench.cli.app import main
    from satbench.seg.corruption import evaluate_val

    base = tmp_path_factory.mktemp("segcorr")
    root = _data(base)
    seen = {}
    original = seg_runner._evaluate_corruptions

    def spy(runner, plan):
        metric = next(m for m in runner.val_evaluator.metrics if hasattr(m, "per_image"))
        seen["runner_clean"] = metric.per_image
        seen["path_clean"] = evaluate_val(runner, None)
        seen["corrupted"] = out = original(runner, plan)
        return out

    seg_runner._evaluate_corruptions = spy
    try:
        assert main(_common(root, base / "wd1", base / "res1") + ["--corruptions", "gaussian_noise", "jpeg",
                                                                  "--severities", "1", "5"]) == 0
    finally:
        seg_runner._evaluate_corruptions = original
    assert main(_common(root, base / "wd0", base / "res0")) == 0
    (with_c,) = [json.loads(p.read_text()) for p in (base / "res1").glob("*.json")]
    (without,) = [json.loads(p.read_text()) for p in (base / "res0").glob("*.json")]
    return with_c, without, seen


def test_clean_through_the_corruption_path_equals_the_runners_clean_val(runs):
    rec, _, seen = runs
    names, cm = seen["runner_clean"]
    names2, cm2 = seen["path_clean"]
    assert names == names2 and len(names) == 4
    assert cm.dtype == cm2.dtype and np.array_equal(cm, cm2)
    block = rec["metrics"]["corruptions"]
    assert block["clean"]["mIoU"] == pytest.approx(rec["summary"]["mIoU"], abs=0.005)
    assert block["clean"]["ci"] == rec["summary"]["ci"]["mIoU"]  # the same resamples as the clean interval


def test_the_block_lists_every_condition_and_noise_changes_the_predictions(runs):
    rec, _, seen = runs
    block = rec["metrics"]["corruptions"]
    assert [(r["type"], r["severity"]) for r in block["conditions"]] == [
        ("gaussian_noise", 1), ("gaussian_noise", 5), ("jpeg", 1), ("jpeg", 5)]
    assert block["metric"] == "mIoU" and block["n"] == 4 and block["types"] == ["gaussian_noise", "jpeg"]
    assert block["bootstrap"]["resamples"] == RESAMPLES
    assert block["protocol"]["name"] == "reo-v2" and re.fullmatch(r"[0-9a-f]{64}", block["protocol"]["hash"])
    assert block["mcnemar"].startswith("not applicable")
    assert block["not_covered"]["types"] == ["rotate", "scale", "translate"]
    _, clean = seen["runner_clean"]
    conf = seen["corrupted"].confusions
    noisy = conf[("gaussian_noise", 5)][1]
    assert conf[("gaussian_noise", 5)][0] == seen["runner_clean"][0]
    assert not np.array_equal(noisy, clean)  # severity 5 noise moves predicted pixels
    assert noisy.sum() == clean.sum()  # the label map untouched: the same pixels counted
    assert np.array_equal(noisy.sum(axis=2), clean.sum(axis=2))  # per image, the same true-class counts
    summary = rec["summary"]["corruptions"]
    assert summary["metric"] == "mIoU" and summary["protocol_hash"] == block["protocol"]["hash"]
    assert set(summary) == {"protocol", "protocol_hash", "types", "severities", "clean_top1", "mca", "relative_drop",
                            "worst_type", "worst_type_top1", "ci", "metric"}
    assert summary["severities"] == [1, 5] and summary["clean_top1"] == block["clean"]["mIoU"]


def test_bootstrap_and_paired_figures_recomputed_from_the_confusions(runs):
    from satbench.stats.bootstrap import BootstrapSpec, confusion_bootstrap, interval, miou_percent

    rec, _, seen = runs
    block = rec["metrics"]["corruptions"]
    _, clean = seen["runner_clean"]
    spec = BootstrapSpec(rec["dataset"]["split_hashes"]["val"], resamples=RESAMPLES)
    clean_b = miou_percent(confusion_bootstrap(clean, spec))
    means, boots = [], []
    for r in block["conditions"]:
        cm = seen["corrupted"].confusions[(r["type"], r["severity"])][1]
        point = float(miou_percent(cm.sum(axis=0)))
        b = miou_percent(confusion_bootstrap(cm, spec))
        assert r["mIoU"] == pytest.approx(point) and r["ci"] == interval(b)
        assert r["drop"] == pytest.approx(block["clean"]["mIoU"] - point)
        assert r["drop_ci"] == interval(clean_b - b)  # paired: the same resampled images
        assert r["relative_drop"] == pytest.approx(100 * (block["clean"]["mIoU"] - point) / block["clean"]["mIoU"])
        assert r["ci"][0] <= r["mIoU"] <= r["ci"][1] or len(set(b)) == 1
        means.append(point)
        boots.append(b)
    assert block["mca"] == pytest.approx(np.mean(means))
    assert block["mca_ci"] == interval(np.mean(boots, axis=0))
    assert block["drop_ci"] == interval(clean_b - np.mean(boots, axis=0))
    per = {k: np.mean([m for m, r in zip(means, block["conditions"]) if r["type"] == k]) for k in ("gaussian_noise",
                                                                                                    "jpeg")}
    assert block["per_type"]["jpeg"]["mIoU"] == pytest.approx(per["jpeg"])
    assert block["worst_type"]["type"] == min(per, key=per.get)
    assert rec["summary"]["corruptions"]["worst_type_top1"] == pytest.approx(min(per.values()))


def test_a_run_without_corruptions_is_unchanged(runs):
    with_c, without, _ = runs
    assert "corruptions" not in without["metrics"] and "corruptions" not in without["summary"]
    assert "corruptions" not in without["extra"] and "corruptions_eval_s" not in without["timings"]
    assert with_c["protocol"]["hash"] == without["protocol"]["hash"]
    assert without["metrics"]["mIoU"] == with_c["metrics"]["mIoU"]  # the same seeded training
    for part in ("metrics", "summary", "extra", "timings"):
        assert set(with_c[part]) - {"corruptions", "corruptions_eval_s", "corruptions_statistics_s"} == \
            set(without[part])
    assert set(with_c) == set(without)


@pytest.mark.parametrize("extra, pattern", [
    (["--corruptions", "rotate", "jpeg"], r"--corruptions rotate: geometric types move the pixels under the label "
                                          r"map, which segmentation does not warp"),
    (["--corruptions", "gausian_noise"], r"unknown corruption type 'gausian_noise'.*gaussian_noise"),
    (["--corruptions", "jpeg", "--severities", "6"], r"severity must be an integer 1\.\.5, got 6"),
    (["--corruptions", "jpeg", "--seeds", "0", "1"], r"--corruptions and --seeds cannot be combined"),
    (["--severities", "1"], r"--severities needs --corruptions"),
])
def test_refusals_are_one_line_before_training(tmp_path, capsys, extra, pattern):
    from satbench.cli.app import main

    wd, res = tmp_path / "wd", tmp_path / "res"
    code = main(_common(FIX / "potsdam", wd, res) + extra)
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and len(err) == 1 and re.search(pattern, err[0]), err
    assert not wd.exists() and not list(res.glob("*.json"))


def test_all_means_the_photometric_types_for_segmentation():
    from satbench.data.corruptions import PHOTOMETRIC
    from satbench.eval.corruption_eval import check_options
    from satbench.eval.task import get_task

    plan = check_options(get_task("segmentation"), {"corruptions": []})
    assert plan.kinds == PHOTOMETRIC and len(plan.kinds) == 9
    assert check_options(get_task("segmentation"), {"corruptions": ["all"]}).kinds == PHOTOMETRIC
    assert len(check_options(get_task("knn"), {"corruptions": ["all"]}).kinds) == 12


def test_run_segmentation_refuses_a_geometric_plan_before_training(tmp_path):
    from satbench.errors import ProtocolError
    from satbench.eval.corruption_eval import check_options
    from satbench.eval.task import get_task
    from satbench.seg.runner import run_segmentation

    plan = check_options(get_task("knn"), {"corruptions": ["scale", "jpeg"]})  # a plan the CLI would not give
    with pytest.raises(ProtocolError, match=r"--corruptions scale: geometric types .* segmentation does not warp"):
        run_segmentation(CARD, str(FIX / "potsdam"), 224, weights="random", work_dir=tmp_path / "wd", iters=1,
                         write=False, corruptions=plan)
    assert not list((tmp_path / "wd").glob("*.json")) and not (tmp_path / "wd" / "final_weights.pth").exists()


def test_the_leaderboard_tabulates_miou_robustness_apart_from_top1(runs):
    """The segmentation record's summary.corruptions (metric mIoU) gets a robustness table of its own, headed mIoU,
    with the record's figures; the same protocol and set measured in top-1 never shares it."""
    import copy

    from satbench.errors import ResultsError
    from satbench.leaderboard.robustness import robustness_tables

    with_c, without, _ = runs
    s = with_c["summary"]["corruptions"]
    assert s["metric"] == "mIoU"
    as_top1 = copy.deepcopy(with_c)
    del as_top1["summary"]["corruptions"]["metric"]
    tables = robustness_tables([with_c, as_top1, without])
    assert len(tables) == 2
    (seg,) = [t for t in tables if "mIoU" in t.title]
    assert [h for _, h in seg.value_columns] == ["clean mIoU", "mCA", "relative drop (%)", "worst type mIoU"]
    (row,) = seg.rows
    assert row.cells["clean_top1"].value == pytest.approx(s["clean_top1"])
    assert row.cells["mca"].value == pytest.approx(s["mca"]) and row.labels["worst"] == s["worst_type"]
    (cls,) = [t for t in tables if "mIoU" not in t.title]
    assert [h for _, h in cls.value_columns][0] == "clean top-1"
    bad = copy.deepcopy(with_c)
    bad["summary"]["corruptions"]["metric"] = "dice"
    with pytest.raises(ResultsError, match=r"summary.corruptions.metric is 'dice'"):
        robustness_tables([bad])


def test_the_corruption_plot_draws_miou(runs):
    """``satbench plot``'s corruption figure reads segmentation's mIoU block: the curves are its mIoU figures."""
    from satbench.leaderboard.corruption_plot import corruption_curves, corruptions_png

    with_c, _, _ = runs
    block = with_c["metrics"]["corruptions"]
    curves = corruption_curves(block)
    assert curves.metric == "mIoU" and curves.clean == pytest.approx(block["clean"]["mIoU"])
    got = {(t, s): v for t, pts in curves.curves.items() for s, v, _ in pts}
    assert got == {(r["type"], r["severity"]): pytest.approx(r["mIoU"]) for r in block["conditions"]}
    assert corruptions_png(block).startswith(b"\x89PNG")
