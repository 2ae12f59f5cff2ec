"""`satbench run --task knn --split torchgeo`: real kNN runs (random-init tiny SatDINO) on bundled UC Merced images with a
small generated TorchGeo-style split served by a loopback hub. The neighbours come from train, the numbers from test,
val is never read; the record says so; the leaderboard keeps the families in separate columns and `compare` refuses
across them in one line."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from satbench.cli.app import main
from support.loopback_http import LoopbackServer
from support.paths import CARDS, UCM_MINI
from support.torchgeo_splits import serve, torchgeo_lines

UCM_COMMIT = "7c5ef3454d9b1cccfa7ccde0c01fc8f00a45909a"
CLASSES = ("agricultural", "airplane", "beach")
KNN = ["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random", "--scales", "0.125", "--k", "1",
       "--no-progress", "--num-workers", "0", "--batch-size", "128", "--resamples", "500"]


def one_line_error(capsys, code, pattern):
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("satbench: error:"), err
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture
def folder(tmp_path) -> Path:
    """Three classes of ucm-mini (20 real images each) as a `uc_merced` folder with SatDINO's train/val for them."""
    root = tmp_path / "data" / "uc_merced"
    for cls in CLASSES:
        shutil.copytree(UCM_MINI / "images" / cls, root / "images" / cls)
    for split in ("train", "val"):
        keep = [ln for ln in (UCM_MINI / f"{split}.txt").read_text().splitlines() if ln.split("/")[1] in CLASSES]
        (root / f"{split}.txt").write_text("\n".join(keep) + "\n")
    return root


def _record(res: Path, before: set[Path]) -> tuple[Path, dict]:
    (path,) = [p for p in res.glob("*.json") if p not in before]
    return path, json.loads(path.read_text())


def test_knn_on_torchgeo_splits_records_leaderboard_and_compare(tmp_path, folder, monkeypatch, capsys):
    from satbench.leaderboard.tables import build_tables
    from satbench.records.predictions import predictions_for_record

    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))
    res = tmp_path / "res"
    lines = torchgeo_lines(folder / "images")
    assert [len(lines[s]) for s in ("train", "val", "test")] == [36, 12, 12]
    seen: set[Path] = set()
    with LoopbackServer(commit=UCM_COMMIT) as srv:
        serve(monkeypatch, srv, "uc_merced", lines, hf_cache=tmp_path / "hf")
        assert main([*KNN, "--dataset", str(folder), "--results-dir", str(res)]) == 0
        a_path, a = _record(res, seen)
        seen.add(a_path)
        for seed in ("0", "1"):
            assert main([*KNN, "--dataset", str(folder), "--results-dir", str(res), "--split", "torchgeo",
                         "--seed", seed]) == 0
            p, r = _record(res, seen)
            seen.add(p)
            if seed == "0":
                b_path, b = p, r
            else:
                c_path = p
    out = capsys.readouterr().out
    assert "split family torchgeo: neighbours from train, numbers on test, val held out (not read)" in out
    assert "36 train / 12 test" in out

    # the default family's record: SatDINO's split, val reported
    assert a["dataset"]["split_family"] == "satdino" and a["dataset"]["split_use"] == {"train": "fit", "val": "report"}
    assert a["metrics"]["n_val"] == 12 and "n_test" not in a["metrics"]
    # the torchgeo record: fitted on train, reported on test, val held out and never decoded
    d, m = b["dataset"], b["metrics"]
    assert d["split_family"] == "torchgeo" and d["split_source"] == "torchgeo"
    assert d["split_use"] == {"train": "fit", "val": "held-out", "test": "report"}
    assert set(d["split_hashes"]) == {"train", "val", "test"}
    assert d["split_family_files"]["files"]["test"]["url"].endswith(f"/resolve/{UCM_COMMIT}/uc_merced-test.txt")
    assert m["n_train"] == 36 and m["n_test"] == 12 and "n_val" not in m
    assert b["extra"]["extraction"]["images_decoded"] == 36 + 12  # the 12 val images are not read
    preds = predictions_for_record(b_path)  # sha256 checked, n from metrics.n_test
    labels = {c: i for i, c in enumerate(CLASSES)}
    assert preds.y_true.tolist() == [labels[Path(ln).stem.rstrip("0123456789")] for ln in lines["test"]]
    assert 100.0 * float(np.mean(preds.preds["knn_s0.125_k1"] == preds.y_true)) == pytest.approx(
        b["summary"]["top1_per_scale"]["0.125"])

    # the leaderboard: one column per family, never a cell of one family in the other's column
    (knn,) = [t for t in build_tables([{**r, "_path": str(p)} for p, r in ((a_path, a), (b_path, b))], task="knn")
              if t.key == "knn"]
    cols = {k: h for k, h in knn.value_columns if k.startswith("uc_merced~")}  # besides the papers' columns
    assert cols == {"uc_merced~uc_merced": "uc_merced (subset of UC Merced)",
                    "uc_merced~uc_merced#torchgeo": "uc_merced (subset of UC Merced), torchgeo split"}
    runs = [row for row in knn.rows if row.kind == "run"]
    assert sorted(list(row.cells) for row in runs) == [["uc_merced~uc_merced"], ["uc_merced~uc_merced#torchgeo"]]
    assert any("torchgeo split" in row.labels["settings"] for row in runs)
    assert main(["leaderboard", "--results-dir", str(res), "--task", "knn", "--format", "md"]) == 0
    assert "uc_merced (subset of UC Merced), torchgeo split" in capsys.readouterr().out

    # compare: refused across families in one line; two torchgeo runs pair on the test split
    one_line_error(capsys, main(["compare", str(a_path), str(b_path)]),
                   r"cannot compare .*: split family differs \(satdino vs torchgeo\)")
    assert main(["compare", str(b_path), str(c_path), "--resamples", "500", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["n"] for r in doc["rows"]] == [12] and doc["bootstrap"]["split_sha256"] == d["split_hashes"]["test"]


def test_split_torchgeo_is_refused_for_tasks_that_report_val(capsys):
    one_line_error(capsys, main(["run", "--task", "linear", "--weights", "random", "--split", "torchgeo"]),
                   r"--split torchgeo does not apply to --task linear \(it takes: satdino\)")
    one_line_error(capsys, main(["run", "--task", "knn", "--weights", "random", "--split", "torchgeo"]),
                   r"--split torchgeo: ucm-mini is a subset of uc_merced")


def test_cached_linear_on_torchgeo_splits_selects_on_val_reports_test(tmp_path, folder, monkeypatch, capsys):
    """cached-linear --split torchgeo: the grid trains on train, the head is selected and the temperature fitted on
    TorchGeo's val, the refit head is reported on test; the record says which split did what."""
    from satbench.records.predictions import predictions_for_record

    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))
    res = tmp_path / "res"
    lines = torchgeo_lines(folder / "images")
    cmd = ["run", "--task", "cached-linear", "--model", "satdino-test-tiny", "--weights", "random", "--epochs", "5",
           "--no-progress", "--num-workers", "0", "--resamples", "500", "--dataset", str(folder),
           "--results-dir", str(res)]
    with LoopbackServer(commit=UCM_COMMIT) as srv:
        serve(monkeypatch, srv, "uc_merced", lines, hf_cache=tmp_path / "hf")
        assert main(cmd + ["--split", "torchgeo", "--temperature-scaling"]) == 0
        path, rec = _record(res, set())
        assert main(cmd) == 0  # SatDINO's splits: the protocol's hold-out of train, val reported
        _, plain = _record(res, {path})
    out = capsys.readouterr().out
    assert "top-1 (test)" in out and "selection (val) top-1" in out
    d, m = rec["dataset"], rec["metrics"]
    assert d["split_family"] == "torchgeo" and d["split_use"] == {"train": "fit", "val": "select", "test": "report"}
    assert m["n_test"] == 12 and m["holdout"]["split"] == "val" and m["holdout"]["fraction"] is None
    assert (m["holdout"]["n_fit"], m["holdout"]["n_holdout"]) == (36, 12)
    assert m["holdout"]["split_sha256"] == d["split_hashes"]["val"]
    assert rec["extra"]["extract"]["images_decoded"] == 36 + 12 + 12
    ts = m["calibration"]["temperature_scaling"]
    assert ts["applied"] is True and ts["fitted_on"]["split"] == "val" and ts["fitted_on"]["n"] == 12
    assert ts["fitted_on"]["split_sha256"] == d["split_hashes"]["val"] != d["split_hashes"]["test"]
    preds = predictions_for_record(path)
    labels = {c: i for i, c in enumerate(CLASSES)}
    assert preds.y_true.tolist() == [labels[Path(ln).stem.rstrip("0123456789")] for ln in lines["test"]]
    assert 100.0 * float(np.mean(preds.preds["top1"] == preds.y_true)) == pytest.approx(rec["summary"]["top1"])
    assert rec["summary"]["ci"]["top1"] is not None
    # the default family is unchanged: a stratified hold-out of train, val reported, no split_use
    assert "split_use" not in plain["dataset"] and plain["metrics"]["holdout"]["stratified"] is True
    assert "n_test" not in plain["metrics"]
