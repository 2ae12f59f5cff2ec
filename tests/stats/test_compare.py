"""`satbench compare A B`: paired differences, McNemar and Holm from prediction sidecars; one-line refusals for runs
on other splits / protocols and for missing or altered sidecars; name resolution; and one end-to-end comparison of two
real `satbench run --task knn` records on the bundled ucm-mini."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from satbench.cli.app import main
from satbench.records.predictions import knn_key, pred_name, write_record_with_predictions
from satbench.stats.bootstrap import BootstrapSpec, paired_difference
from satbench.stats.significance import holm, mcnemar_exact
from support.paths import CARDS

VAL = hashlib.sha256(b"val").hexdigest()
TRAIN = hashlib.sha256(b"train").hexdigest()
N = 20
Y = np.arange(N) % 4


def preds_with(right: np.ndarray) -> np.ndarray:
    """Predictions that are right exactly where ``right`` is true."""
    return np.where(right, Y, (Y + 1) % 4)


# A right on 15, B right on 10: 9 both right, 6 only A, 1 only B, 4 neither -> McNemar p = 2 * 8/128 = 0.125
BOTH, A_ONLY, B_ONLY = np.arange(N) < 9, (np.arange(N) >= 9) & (np.arange(N) < 15), np.arange(N) == 15
RIGHT_A, RIGHT_B = BOTH | A_ONLY, BOTH | B_ONLY


def make(folder: Path, model: str, arrays: dict, *, task: str = "linear", dataset: str = "toy", val: str = VAL,
         protocol_hash: str = "a" * 64, date: str = "2026-01-02T00:00:00+00:00", seed: int = 0,
         extra_metrics: dict | None = None) -> Path:
    rec = {"schema": "satbench.record/1", "id": hashlib.sha256(f"{model}{dataset}{date}{val}{task}".encode()).hexdigest()[:12],
           "task": task, "model": model, "weights": {"source": "random", "seed": seed},
           "protocol": {"name": f"proto-{task}", "hash": protocol_hash, "overrides": {}},
           "dataset": {"name": dataset, "num_classes": 4, "split_hashes": {"train": TRAIN, "val": val}},
           "metrics": {"n_val": N, **(extra_metrics or {})}, "summary": {}, "provenance": {"date": date}}
    labels = {} if "confusion" in arrays else {"y_true": Y}
    return write_record_with_predictions(rec, {**labels, **arrays}, 4, folder)


def one_line_error(capsys, code, pattern):
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("satbench: error:"), err
    assert re.search(pattern, lines[0]), lines[0]


@pytest.fixture
def pair(tmp_path):
    a = make(tmp_path, "model-a", {pred_name("top1"): preds_with(RIGHT_A)})
    b = make(tmp_path, "model-b", {pred_name("top1"): preds_with(RIGHT_B)})
    return a, b


def test_compare_two_records_table_json_csv(pair, capsys):
    a, b = pair
    assert main(["compare", str(a), str(b), "--resamples", "2000"]) == 0
    out = capsys.readouterr().out
    assert "model-a [random-seed0]" in out and "+25.00 [" in out and "0.1250" in out and "75.00" in out
    assert main(["compare", str(a), str(b), "--resamples", "2000", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (row,) = doc["rows"]
    assert (row["a"], row["b"], row["diff"]) == (75.0, 50.0, 25.0)
    assert (row["a_only"], row["b_only"]) == (6, 1) and row["p_mcnemar"] == 0.125 == row["p_holm"]
    _, ci = paired_difference(RIGHT_A.astype(float), RIGHT_B.astype(float), BootstrapSpec(VAL, resamples=2000))
    assert row["ci"] == ci and ci[0] < 25 < ci[1]
    assert doc["bootstrap"]["resamples"] == 2000 and doc["bootstrap"]["split_sha256"] == VAL
    assert main(["compare", str(a), str(b), "--resamples", "2000", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1 and float(rows[0]["diff"]) == 25.0 and float(rows[0]["p_mcnemar"]) == 0.125
    assert float(rows[0]["ci_lo"]) == ci[0]


def test_multiscale_knn_rows_and_the_average(tmp_path, capsys):
    rng = np.random.default_rng(1)
    ra = {s: rng.random(N) < acc for s, acc in ((1.0, 0.9), (0.5, 0.6))}
    rb = {s: rng.random(N) < acc for s, acc in ((1.0, 0.8), (0.5, 0.3))}
    arr = lambda r: {pred_name(knn_key(s, k)): preds_with(r[s]) for s in r for k in (10, 20)}  # noqa: E731
    a = make(tmp_path, "ka", arr(ra), task="knn", extra_metrics={"k_report": 20})
    b = make(tmp_path, "kb", arr(rb), task="knn", extra_metrics={"k_report": 20})
    assert main(["compare", str(a), str(b), "--resamples", "1000", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["eval"] for r in rows] == ["s=1 k=20", "s=0.5 k=20", "average k=20"]
    for r, s in zip(rows, (1.0, 0.5)):
        t = mcnemar_exact(ra[s], rb[s])
        assert (r["a_only"], r["b_only"], r["p_mcnemar"]) == (t.a_only, t.b_only, t.p)
    assert rows[2]["diff"] == pytest.approx((rows[0]["diff"] + rows[1]["diff"]) / 2) and rows[2]["p_mcnemar"] is None
    assert [r["p_holm"] for r in rows] == holm([rows[0]["p_mcnemar"], rows[1]["p_mcnemar"], None])
    assert main(["compare", str(a), str(b), "--resamples", "100", "--k", "10"]) == 0
    assert "s=0.5 k=10" in capsys.readouterr().out
    code = main(["compare", str(a), str(b), "--k", "7"])
    one_line_error(capsys, code, r"no kNN predictions at k = 7 \(has k \[10, 20\]\)")


def test_segmentation_runs_compare_mIoU_on_the_same_resampled_images(tmp_path, capsys):
    from satbench.stats.bootstrap import miou_percent, resample_indices

    rng = np.random.default_rng(2)
    cm_a = rng.integers(0, 40, size=(N, 4, 4)) + np.eye(4, dtype=int) * 60
    cm_b = rng.integers(0, 40, size=(N, 4, 4)) + np.eye(4, dtype=int) * 40
    a = make(tmp_path, "seg-a", {"confusion": cm_a}, task="segmentation")
    b = make(tmp_path, "seg-b", {"confusion": cm_b}, task="segmentation")
    rec = json.loads(a.read_text())
    assert "y_true" not in rec["predictions"]["keys"]
    assert main(["compare", str(a), str(b), "--resamples", "300", "--format", "json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    ma, mb = float(miou_percent(cm_a.sum(0))), float(miou_percent(cm_b.sum(0)))
    assert row["eval"] == "mIoU" and row["a"] == ma and row["b"] == mb and row["p_mcnemar"] is None
    idx = np.concatenate(list(resample_indices(BootstrapSpec(VAL, resamples=300), N)))
    naive = [float(miou_percent(cm_a[r].sum(0)) - miou_percent(cm_b[r].sum(0))) for r in idx]
    np.testing.assert_allclose(row["ci"], np.percentile(naive, [2.5, 97.5]), atol=1e-9)


@pytest.mark.parametrize("kw, pattern", [
    ({"val": hashlib.sha256(b"other val").hexdigest()}, r"val split hash differs"),
    ({"protocol_hash": "b" * 64}, r"protocol hash differs"),
    ({"task": "finetune"}, r"task differs"),
    ({"dataset": "other"}, r"dataset differs"),
])
def test_refuses_runs_that_are_not_on_the_same_split_and_protocol(tmp_path, capsys, kw, pattern):
    a = make(tmp_path, "model-a", {pred_name("top1"): preds_with(RIGHT_A)})
    b = make(tmp_path, "model-b", {pred_name("top1"): preds_with(RIGHT_B)}, **kw)
    code = main(["compare", str(a), str(b)])
    one_line_error(capsys, code, r"cannot compare .*: " + pattern)


def test_refuses_missing_or_altered_sidecars_and_old_records(pair, tmp_path, capsys):
    a, b = pair
    side = b.with_name(b.stem + ".preds.npz")
    data = side.read_bytes()
    side.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    one_line_error(capsys, main(["compare", str(a), str(b)]), r"sha256 does not match the record")
    side.unlink()
    one_line_error(capsys, main(["compare", str(a), str(b)]), r"predictions sidecar .* is missing")
    old = json.loads(a.read_text())
    old.pop("predictions")
    (tmp_path / "old.json").write_text(json.dumps(old))
    one_line_error(capsys, main(["compare", str(tmp_path / "old.json"), str(a)]), r"has no predictions sidecar")
    one_line_error(capsys, main(["compare", str(a), str(a)]), r"same record")
    one_line_error(capsys, main(["compare", str(tmp_path / "nope.json"), str(a)]), r"nope.json does not exist")


def test_refuses_different_labels_under_the_same_split_hash(tmp_path, capsys):
    a = make(tmp_path, "model-a", {pred_name("top1"): preds_with(RIGHT_A)})
    rec = json.loads(a.read_text())
    rec.pop("predictions")
    rec["id"], rec["model"] = "ffffffffffff", "model-b"
    y2 = (Y + 1) % 4
    b = write_record_with_predictions(rec, {"y_true": y2, pred_name("top1"): y2}, 4, tmp_path)
    one_line_error(capsys, main(["compare", str(a), str(b)]), r"val labels \(y_true\) differ")


def test_model_names_resolve_to_the_latest_comparable_runs_with_holm_across_datasets(tmp_path, capsys):
    rng = np.random.default_rng(0)
    make(tmp_path, "ma", {pred_name("top1"): preds_with(RIGHT_B)}, dataset="d1", date="2026-01-01T00:00:00+00:00")
    newest = make(tmp_path, "ma", {pred_name("top1"): preds_with(RIGHT_A)}, dataset="d1", date="2026-01-03T00:00:00+00:00")
    make(tmp_path, "mb", {pred_name("top1"): preds_with(RIGHT_B)}, dataset="d1", date="2026-01-02T00:00:00+00:00")
    r2a, r2b = rng.random(N) < 0.9, rng.random(N) < 0.4
    make(tmp_path, "ma", {pred_name("top1"): preds_with(r2a)}, dataset="d2", val=TRAIN)
    make(tmp_path, "mb", {pred_name("top1"): preds_with(r2b)}, dataset="d2", val=TRAIN)
    make(tmp_path, "mb", {pred_name("top1"): preds_with(r2b)}, dataset="d3")  # no A run there: not compared
    assert main(["compare", "ma", "mb", "--results-dir", str(tmp_path), "--resamples", "500", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["dataset"] for r in doc["rows"]] == ["d1", "d2"]
    assert doc["a"][0]["record"] == str(newest)
    p = [r["p_mcnemar"] for r in doc["rows"]]
    assert p[0] == 0.125 and [r["p_holm"] for r in doc["rows"]] == holm(p) and doc["holm"]["tests"] == 2
    # a path against a name: the name's latest comparable run
    assert main(["compare", str(newest), "mb", "--results-dir", str(tmp_path), "--format", "json"]) == 0
    assert [r["dataset"] for r in json.loads(capsys.readouterr().out)["rows"]] == ["d1"]
    one_line_error(capsys, main(["compare", "ma", "ma", "--results-dir", str(tmp_path)]), r"same model")
    one_line_error(capsys, main(["compare", "ma", "zz", "--results-dir", str(tmp_path)]), r"no records of model 'zz'")
    one_line_error(capsys, main(["compare", "ma", "mb", "--results-dir", str(tmp_path), "--dataset", "d3"]),
                   r"no records of model 'ma'")


# ---------------------------------------------------------------------------------------------------------------------
# End to end: two real kNN runs (random-init tiny SatDINO, seeds 0 and 1) on the bundled ucm-mini
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.slow  # two real runs: 420 JPEG decodes each (~10-25 s on the shared 2-core machine)
def test_end_to_end_two_real_knn_runs(tmp_path, monkeypatch, capsys):
    """run_knn writes each record with its prediction sidecar: the sidecar reproduces the record's top-1, then
    `satbench compare` pairs the two seeds."""
    from satbench.records.predictions import predictions_for_record

    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))
    res = tmp_path / "res"
    paths = []
    for seed in (0, 1):
        assert main(["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random", "--seed", str(seed),
                     "--scales", "0.125", "--k", "1", "--results-dir", str(res), "--no-progress", "--num-workers", "0",
                     "--batch-size", "128", "--resamples", "2000"]) == 0
        (path,) = [p for p in res.glob("*.json") if p not in paths]
        rec = json.loads(path.read_text())
        p = predictions_for_record(path)  # sha256 checked
        assert 100.0 * float(np.mean(p.preds["knn_s0.125_k1"] == p.y_true)) == pytest.approx(
            rec["summary"]["top1_per_scale"]["0.125"])
        paths.append(path)
    capsys.readouterr()
    assert main(["compare", str(paths[0]), str(paths[1]), "--resamples", "2000", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (row,) = doc["rows"]
    recs = [json.loads(p.read_text()) for p in paths]
    assert row["n"] == 84 and row["eval"] == "s=0.125 k=1"
    assert row["a"] == recs[0]["summary"]["top1_per_scale"]["0.125"] and row["b"] == recs[1]["summary"]["top1_per_scale"]["0.125"]
    assert row["ci"][0] <= row["diff"] <= row["ci"][1] and 0 < row["p_mcnemar"] <= 1
    assert recs[0]["summary"]["ci"]["top1_avg"][0] <= recs[0]["summary"]["top1_avg"] <= recs[0]["summary"]["ci"]["top1_avg"][1]
    assert main(["compare", str(paths[0]), str(paths[1])]) == 0
    assert "satdino-test-tiny [random-seed0]" in capsys.readouterr().out


def test_protocol_refusal_names_the_setting_that_differs_not_the_identical_overrides(tmp_path, capsys):
    """Same overrides ({}), different protocol content: the refusal names `size_multiple 16 vs 14`, as results diff."""
    paths = []
    for model, multiple, h in (("model-a", 16, "a"), ("model-b", 14, "b")):
        rec = {"schema": "satbench.record/1", "id": model[-1] * 12, "task": "knn", "model": model,
               "weights": {"source": "random", "seed": 0},
               "protocol": {"name": "satdino-knn-v1", "hash": h * 64, "overrides": {},
                            "content": {"name": "satdino-knn-v1", "params": {"size_multiple": multiple, "k": [20]}}},
               "dataset": {"name": "toy", "num_classes": 4, "split_hashes": {"train": TRAIN, "val": VAL}},
               "metrics": {"n_val": N}, "summary": {}, "provenance": {"date": "2026-01-02T00:00:00+00:00"}}
        paths.append(write_record_with_predictions(rec, {"y_true": Y, pred_name("top1"): preds_with(RIGHT_A)}, 4,
                                                   tmp_path))
    code = main(["compare", str(paths[0]), str(paths[1])])
    one_line_error(capsys, code, r"protocol hash differs \(.*\): size_multiple 16 vs 14$")
