"""satbench.eval.repeats: ``--seeds`` (one record per seed + an aggregate) and the train-subset draws, end to end through
the runners on a tiny random ViT and a 5-class copy of the bundled ucm-mini; every classification record keeps a
hashed prediction sidecar that reproduces its numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from support.tiny_runs import PROBE, small_scene_copy, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny(monkeypatch):
    """``satbench.api.load`` returns a 2-block random ViT-Tiny; the dict counts its forward images."""
    import satbench.api as api

    calls = {"images": 0}
    model = tiny_model(calls)
    monkeypatch.setattr(api, "load", lambda *a, **k: model)
    return calls


@pytest.fixture
def small(tmp_path, ucm_mini):
    """A 5-class copy of ucm-mini as a ``uc_merced`` folder with its own splits: 8 train and 2 val images per class."""
    return small_scene_copy(tmp_path / "data", ucm_mini)


def _check_sidecar(rec) -> dict:
    """The record's sidecar exists, its sha256 is checked on read, and it reproduces the record's top-1."""
    from satbench.records.predictions import predictions_for_record

    entry = rec["predictions"]
    side = Path(rec["_path"]).parent / entry["file"]
    assert side.is_file() and entry["file"] == Path(rec["_path"]).stem + ".preds.npz"
    import hashlib

    assert hashlib.sha256(side.read_bytes()).hexdigest() == entry["sha256"]
    p = predictions_for_record(rec["_path"])
    return {"y": p.y_true, "preds": p.preds}


# ---------------------------------------------------------------------------------------------------------------------
# The aggregate record on known numbers
# ---------------------------------------------------------------------------------------------------------------------
def _member(value: float, seed: int, task: str = "linear"):
    from satbench.records.results import make_record

    return make_record(task=task, model="m", weights={"source": "random", "seed": 0},
                       protocol={"name": "p", "hash": "h" * 64}, dataset={"name": "d"},
                       metrics={"n_val": 84, "num_classes": 21}, summary={"top1": value, "top5": value + 10,
                                                                         "ci": {"top1": [value - 1, value + 1]}},
                       timings={"total_s": 2.0}, extra={"seed_group": {"id": "g", "seed": seed}})


def test_seed_aggregate_numbers_mean_sample_std_min_max_iqm():
    from satbench.eval.repeats import aggregate, describe_aggregate, is_aggregate

    vals = [70.0, 80.0, 72.0, 74.0, 90.0]
    agg = aggregate([_member(v, s) for s, v in enumerate(vals)], "seeds", "g", list(range(5)))
    s = agg["summary"]["seeds"]
    assert s["n"] == 5 and s["values"] == vals and s["seeds"] == [0, 1, 2, 3, 4]
    assert s["mean"] == pytest.approx(77.2) and agg["summary"]["top1"] == pytest.approx(77.2)
    assert s["std"] == pytest.approx(float(np.std(vals, ddof=1)))  # sample std
    assert s["std"] == pytest.approx(8.07465, abs=1e-5)
    assert (s["min"], s["max"]) == (70.0, 90.0)
    assert s["iqm"] == pytest.approx((72 + 74 + 80) / 3)  # 5 values: int(1.25) = 1 cut from each end
    assert agg["summary"]["top5"] == pytest.approx(87.2)
    assert is_aggregate(agg) and agg["extra"]["aggregate_of"] == "seeds" and "predictions" not in agg
    assert agg["timings"]["total_s"] == pytest.approx(10.0)
    text = describe_aggregate(agg)
    assert "77.20 +- 8.07 (n=5)" in text and "IQM 75.33" in text
    three = aggregate([_member(v, s) for s, v in enumerate([1.0, 2.0, 4.0])], "seeds", "g", [0, 1, 2])
    assert "iqm" not in three["summary"]["seeds"]  # from 4 seeds only
    assert three["summary"]["seeds"]["std"] == pytest.approx(1.527525, abs=1e-6)


def test_aggregate_refuses_a_member_without_its_headline_number():
    from satbench.errors import ResultsError
    from satbench.eval.repeats import aggregate

    bad = _member(1.0, 1)
    del bad["summary"]["top1"]
    with pytest.raises(ResultsError, match="no numeric summary.top1"):
        aggregate([_member(1.0, 0), bad], "seeds", "g", [0, 1])


# ---------------------------------------------------------------------------------------------------------------------
# --seeds through the runners (Python API and CLI)
# ---------------------------------------------------------------------------------------------------------------------
def test_api_run_linear_with_seeds_writes_each_seed_with_its_sidecar_and_the_aggregate(tiny, small, tmp_path):
    import satbench
    from satbench.records.results import read_records

    res = tmp_path / "res"
    agg = satbench.run("linear", model="satdino-vit_small-16", weights="random", dataset=str(small), seeds=[0, 1],
                       results_dir=res, device="cpu", num_workers=0, progress=False, resamples=500,
                       output_dir=str(tmp_path / "out"), **PROBE)
    members = agg["_members"]
    assert [m["extra"]["seed_group"]["seed"] for m in members] == [0, 1]
    assert [m["extra"]["seed"] for m in members] == [0, 1]  # the training seed
    assert (tmp_path / "out" / "seed0" / "checkpoint.pth").is_file()  # each seed its own checkpoint folder
    assert (tmp_path / "out" / "seed1" / "checkpoint.pth").is_file()
    recs = read_records(res)
    assert len(recs) == 3 and len(list(res.glob("*.preds.npz"))) == 2
    on_disk = {r["id"]: r for r in recs}
    for m in members:
        r = on_disk[m["id"]]
        got = _check_sidecar(r)
        assert set(got["preds"]) == {"top1"} and len(got["y"]) == 10
        assert 100.0 * float(np.mean(got["preds"]["top1"] == got["y"])) == pytest.approx(r["summary"]["top1"])
        lo, hi = r["summary"]["ci"]["top1"]
        assert lo <= r["summary"]["top1"] <= hi
        assert r["metrics"]["statistics"]["bootstrap"]["resamples"] == 500
        assert r["metrics"]["statistics"]["bootstrap"]["split_sha256"] == small_split_sha(small, "val")
    a = on_disk[agg["id"]]
    values = [on_disk[m["id"]]["summary"]["top1"] for m in members]
    assert a["summary"]["seeds"]["values"] == values and a["summary"]["top1"] == pytest.approx(np.mean(values))
    assert a["extra"]["seed_records"] == [Path(m["_path"]).name for m in members]
    assert a["protocol"]["hash"] == members[0]["protocol"]["hash"] and "predictions" not in a


def small_split_sha(root, split):
    from satbench.data.datasets import open_dataset

    return open_dataset(str(root)).split_sha256(split)


def test_cli_cached_linear_seeds_and_finetune_sidecar(tiny, small, tmp_path, capsys):
    import yaml

    from satbench.cli.app import main
    from satbench.config.protocols import load_protocol
    from satbench.records.results import read_records

    res = tmp_path / "res"
    base = ["--model", "satdino-vit_small-16", "--weights", "random", "--dataset", str(small), "--no-progress",
            "--num-workers", "0", "--device", "cpu", "--results-dir", str(res), "--resamples", "300"]
    proto = yaml.safe_load(open(load_protocol("cached-linear-v1").path))
    proto["params"].update(val_resize=36, val_crop=32, epochs=5)
    ppath = tmp_path / "cached-linear-v1.yaml"
    ppath.write_text(yaml.safe_dump(proto))
    assert main(["run", "--task", "cached-linear", "--protocol", str(ppath), "--seeds", "3", "4", *base]) == 0
    out = capsys.readouterr().out
    assert "2 seeds" in out and "(n=2)" in out
    recs = read_records(res)
    members = [r for r in recs if not r["extra"].get("aggregate_of")]
    assert len(recs) == 3 and sorted(m["extra"]["seed"] for m in members) == [3, 4]
    for r in members:
        got = _check_sidecar(r)
        assert 100.0 * float(np.mean(got["preds"]["top1"] == got["y"])) == pytest.approx(r["summary"]["top1"])
        assert set(r["summary"]["ci"]) == {"top1", "top5"}  # 5 classes: top-5 too
    (tmp_path / "ft").mkdir()
    ft = tmp_path / "ft" / "satdino-finetune-v1.yaml"
    proto = yaml.safe_load(open(load_protocol("satdino-finetune-v1").path))
    proto["params"].update(PROBE)
    ft.write_text(yaml.safe_dump(proto))
    res2 = tmp_path / "res_ft"
    assert main(["run", "--task", "finetune", "--protocol", str(ft), "--output-dir", str(tmp_path / "ftout"),
                 *base[:-4], "--results-dir", str(res2)]) == 0
    (rec,) = read_records(res2)
    got = _check_sidecar(rec)
    assert 100.0 * float(np.mean(got["preds"]["top1"] == got["y"])) == pytest.approx(rec["summary"]["top1"])
    assert rec["metrics"]["statistics"]["bootstrap"]["resamples"] == 10000  # the default


# ---------------------------------------------------------------------------------------------------------------------
# Train subsets through the runners: nested, stratified, hashed; one forward pass for every fraction and draw
# ---------------------------------------------------------------------------------------------------------------------
def test_knn_fractions_are_nested_stratified_hashed_and_cost_no_forward_pass(tiny, small, tmp_path):
    import satbench
    from satbench.data.datasets import open_dataset
    from satbench.records.results import read_records
    from satbench.stats.fractions import subsets

    res, cache = tmp_path / "res", tmp_path / "cache"
    kw = dict(model="satdino-vit_small-16", weights="random", dataset=str(small), results_dir=res, device="cpu",
              num_workers=0, progress=False, cache_dir=str(cache), scales=[0.125], k=[1, 3])
    plain = satbench.run("knn", resamples=200, **kw)
    n_images = 40 + 10
    assert tiny["images"] == n_images  # one extraction (train + val, one scale)
    out = satbench.run("knn", train_fraction=[0.25, 0.5, 1.0], draws=2, resamples=200, **kw)
    assert tiny["images"] == n_images  # every fraction and draw came from the warm feature cache: no forward pass
    assert [r["extra"]["aggregate_of"] for r in out] == ["draws"] * 3
    members = [m for r in out for m in r["_members"]]
    assert len(members) == 6 and all(m["extra"]["cache"]["misses"] == 0 for m in members)

    ds = open_dataset(str(small))
    labels = np.asarray([s.label for s in ds.samples("train")])
    drawn = subsets(labels.tolist(), parent_sha256=ds.split_sha256("train"), fractions=[0.25, 0.5, 1.0], shots=(),
                    seed=0, draws=2)
    by = {(s.value, s.draw): s for s in drawn}
    for m in members:
        sub = m["dataset"]["train_subset"]
        ref = by[(sub["fraction"], sub["draw"])]
        assert sub["sha256"] == ref.sha256 and sub["parent_split_sha256"] == ds.split_sha256("train")
        assert sub["n"] == len(ref.indices) == m["metrics"]["n_train"]
        assert np.bincount(labels[ref.indices]).tolist() == [round(8 * sub["fraction"])] * 5  # stratified
        _check_sidecar(read_records(res, "knn")[[r["id"] for r in read_records(res, "knn")].index(m["id"])])
    for d in (0, 1):  # nested: 25% inside 50% inside 100% for the same seed and draw
        a, b, c = (set(by[(f, d)].indices.tolist()) for f in (0.25, 0.5, 1.0))
        assert a < b < c
    assert by[(0.25, 0)].sha256 != by[(0.25, 1)].sha256  # draws differ
    # the 100% "subset" is the whole split: the same numbers as the plain run
    full = [m for m in members if m["dataset"]["train_subset"]["fraction"] == 1.0]
    assert all(m["summary"]["top1_avg"] == plain["summary"]["top1_avg"] for m in full)
    agg = out[0]
    vals = [m["summary"]["top1_avg"] for m in agg["_members"]]
    assert agg["summary"]["draws"]["values"] == vals and agg["summary"]["top1_avg"] == pytest.approx(np.mean(vals))
    assert agg["summary"]["draws"]["subset_sha256"] == [m["dataset"]["train_subset"]["sha256"] for m in agg["_members"]]


def test_cached_linear_fractions_fit_on_one_extraction(tiny, small, tmp_path):
    import satbench

    out = satbench.run("cached-linear", model="satdino-vit_small-16", weights="random", dataset=str(small),
                       results_dir=tmp_path / "res", device="cpu", num_workers=0, progress=False, use_cache=False,
                       shots=[6, 8], resamples=200, val_resize=36, val_crop=32, epochs=3)
    assert tiny["images"] == 50  # no cache, still one extraction of train + val for both shot counts
    assert [r["dataset"]["train_subset"]["shots"] for r in out] == [6, 8]
    assert [r["metrics"]["n_train"] for r in out] == [30, 40]
    assert out[0]["extra"]["extract"]["forward_images"] == 50  # the first record carries the one extraction
    assert out[1]["extra"]["extract"]["shared_with_record"] == out[0]["id"]
    assert out[1]["extra"]["extract"]["forward_images"] == 0
    for r in out:
        _check_sidecar(r)
