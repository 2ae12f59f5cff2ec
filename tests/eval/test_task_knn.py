"""`satbench run --task knn` and `satbench cache`: records, tables, one-line errors, no partial records."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from satbench.models.backbones.satdino import SatDINOViT
from satbench.cli.app import main
from satbench.models.registry import get_card
from satbench.runtime.resources import bundled_data_dir
from satbench.models.weights import LoadedModel, WeightsInfo

UCM = bundled_data_dir() / "ucm-mini"


def _tiny(args=None):
    card = dataclasses.replace(get_card("satdino-vit_small-16"), name="test-satdino-tiny-d2", arch="vit_tiny",
                               embed_dim=192, feature_dim=192, depth=2, num_heads=3, weights={})
    torch.manual_seed(0)
    return LoadedModel(SatDINOViT(embed_dim=192, depth=2, num_heads=3).eval(), card,
                       WeightsInfo(source="random", kind="random", seed=0))


@pytest.fixture
def tiny(monkeypatch):
    import satbench.api as api

    monkeypatch.setattr(api, "load", lambda *a, **k: _tiny())


def records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


def one_line_error(capsys, code, pattern):
    import re

    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("satbench: error:"), err
    assert re.search(pattern, lines[0]), lines[0]


def test_run_knn_writes_record_and_prints_table(tiny, tmp_path, capsys):
    res = tmp_path / "res"
    code = main(["run", "--task", "knn", "--weights", "random", "--scales", "0.125", "--k", "5", "20",
                 "--results-dir", str(res), "--no-progress", "--batch-size", "128", "--num-workers", "0"])
    out = capsys.readouterr().out
    assert code == 0
    assert "256->32(32)" in out and "top-1 k=20" in out and "top-1 k=5" in out and "average" in out
    (rec,) = records(res)
    assert rec["task"] == "knn" and rec["dataset"]["name"] == "ucm-mini"
    assert rec["protocol"]["overrides"] == {"scales": [0.125], "k": [5, 20]}
    assert set(rec["summary"]["top1_per_scale"]) == {"0.125"}
    assert rec["extractor"]["input"]["text"].startswith("[0, 1] then uc_merced mean/std -> [")  # the range it saw
    # a second run never overwrites: two records, the second from the cache
    assert main(["run", "--task", "knn", "--weights", "random", "--scales", "0.125", "--k", "5", "20",
                 "--results-dir", str(res), "--no-progress", "--num-workers", "0"]) == 0
    recs = records(res)
    assert len(recs) == 2 and recs[0]["summary"] == recs[1]["summary"]
    assert sorted(r["extra"]["cache"]["hits"] for r in recs) == [0, 2]
    capsys.readouterr()
    assert main(["cache", "ls"]) == 0
    out = capsys.readouterr().out
    assert "test-satdino-tiny-d2" in out and "2 entries" in out
    assert main(["cache", "clear"]) == 0 and "removed 2" in capsys.readouterr().out


@pytest.mark.parametrize("argv, pattern", [
    (["--scales", "0"], "argument --scales: expected a positive number"),
    (["--scales", "x"], "argument --scales: expected a positive number"),
    (["--k", "-3"], "argument --k: expected a positive integer"),
])
def test_malformed_overrides_fail_in_argparse(tiny, tmp_path, capsys, argv, pattern):
    with pytest.raises(SystemExit) as exc:
        main(["run", "--task", "knn", "--weights", "random", "--results-dir", str(tmp_path / "r"), *argv])
    assert exc.value.code == 2 and pattern in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def make_bad(tmp_path: Path, kind: str) -> Path:
    root = tmp_path / "myset"
    for c in ("agricultural", "beach", "forest"):
        shutil.copytree(UCM / "images" / c, root / "images" / c)
    lines = {s: [ln for ln in (UCM / f"{s}.txt").read_text().split() if ln.split("/")[1] in ("agricultural", "beach", "forest")]
             for s in ("train", "val")}
    if kind == "missing":
        lines["val"].append("./beach/beach_does_not_exist.jpg")
    elif kind == "empty-class":
        (root / "images" / "harbor").mkdir()
    elif kind == "corrupt":
        victim = root / "images" / lines["val"][0][2:]
        victim.write_bytes(b"\xff\xd8\xff this is not a jpeg")
    elif kind == "outside":
        lines["train"][3] = "./../../etc/passwd"
    for s, ls in lines.items():
        (root / f"{s}.txt").write_text("\n".join(ls) + "\n")
    return root


@pytest.mark.parametrize("kind, pattern", [
    ("missing", r"val\.txt: 1 of \d+ entries have no file .*beach_does_not_exist"),
    ("empty-class", "class folder\\(s\\) with no split entries: harbor"),
    ("corrupt", r"agricultural\w*\.jpg"),
    ("outside", r"train\.txt:4: .*outside the dataset"),
])
def test_bad_dataset_folders_one_line_error_no_record(tiny, tmp_path, capsys, kind, pattern):
    root = make_bad(tmp_path, kind)
    res = tmp_path / "res"
    code = main(["run", "--task", "knn", "--weights", "random", "--dataset", str(root), "--normalization", "uc_merced",
                 "--native-size", "256", "--scales", "0.125", "--k", "5", "--results-dir", str(res), "--no-progress"])
    one_line_error(capsys, code, pattern)
    assert records(res) == []


def test_unknown_folder_works_without_hand_made_arguments(tiny, tmp_path, capsys):
    """A small folder that is not in the catalog: native size read from the images, normalisation computed from its
    train split (as --normalization compute), k clipped to the train size -- each said on stderr and recorded."""
    from PIL import Image

    root = make_bad(tmp_path, "none")
    for split in ("train", "val"):  # keep the 256 x 256 images (UC Merced has a few 252- and 247-px ones)
        lines = (root / f"{split}.txt").read_text().split()
        keep = [ln for ln in lines if Image.open(root / "images" / ln[2:]).size == (256, 256)]
        (root / f"{split}.txt").write_text("\n".join(keep) + "\n")
    code = main(["run", "--task", "knn", "--weights", "random", "--dataset", str(root), "--scales", "0.125",
                 "--results-dir", str(tmp_path / "res"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0, err
    (rec,) = records(tmp_path / "res")
    assert rec["dataset"]["native_size"] == 256 and rec["dataset"]["facts_source"]["native_size"] == "measured from the images"
    assert rec["dataset"]["in_catalog"] is False and rec["dataset"]["protocol_dataset"] is None
    assert rec["extra"]["normalization_computed"]["name"] == "computed:myset:train"
    n = rec["metrics"]["n_train"]
    assert n < 100 and rec["metrics"]["k_clipped"] == {"requested": [10, 20, 100, 200], "used": [10, 20, n],
                                                      "n_train": n}
    assert rec["protocol"]["overrides"]["k"] == [10, 20, n] and rec["summary"]["k"] == 20
    assert "normalisation is computed" in err and "clipped" in err


def test_folder_of_mixed_sizes_needs_native_size(tiny, tmp_path, capsys):
    from PIL import Image

    root = make_bad(tmp_path, "none")
    victim = next((root / "images" / "beach").glob("*.jpg"))
    Image.open(victim).resize((200, 200)).save(victim)
    code = main(["run", "--task", "knn", "--weights", "random", "--dataset", str(root), "--scales", "0.125",
                 "--results-dir", str(tmp_path / "res"), "--no-progress"])
    one_line_error(capsys, code, "images differ in size.*pass --native-size")


def test_normalization_compute_is_recorded(tiny, tmp_path, capsys):
    root = make_bad(tmp_path, "none")
    res = tmp_path / "res"
    code = main(["run", "--task", "knn", "--weights", "random", "--dataset", str(root), "--normalization", "compute",
                 "--native-size", "256", "--scales", "0.125", "--k", "5", "--results-dir", str(res), "--no-progress",
                 "--num-workers", "0"])
    assert code == 0, capsys.readouterr().err
    (rec,) = records(res)
    used = rec["dataset"]["normalization_used"]
    assert used["name"] == "computed:myset:train" and rec["extra"]["normalization_computed"]["mean"] == used["mean"]
    assert 0.3 < used["mean"][0] < 0.7 and 0.05 < used["std"][0] < 0.4


def test_dataset_all_needs_a_root(tiny, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("SATBENCH_DATA", raising=False)
    code = main(["run", "--task", "knn", "--weights", "random", "--dataset", "all"])
    one_line_error(capsys, code, "--dataset all needs --data-root")
    (tmp_path / "d").mkdir()
    code = main(["run", "--task", "knn", "--weights", "random", "--dataset", "all", "--data-root", str(tmp_path / "d")])
    one_line_error(capsys, code, "none of eurosat")


def test_k_clipping_note_is_computed_on_the_subset_the_table_shows(tiny, tmp_path, capsys):
    """--train-fraction: the note names the subset's own clipped k list, the one its record and table use (never the
    whole train split's)."""
    import re

    code = main(["run", "--task", "knn", "--weights", "random", "--scales", "0.125", "--train-fraction", "0.1",
                 "--results-dir", str(tmp_path / "res"), "--no-progress", "--num-workers", "0"])
    out, err = capsys.readouterr()
    assert "input: [0, 1] pixels, normalised with uc_merced (mean 0.482 0.488 0.449" in out
    assert code == 0, err
    (rec,) = [r for r in records(tmp_path / "res") if r["dataset"].get("train_subset")]
    used = rec["metrics"]["k_clipped"]["used"]
    n = rec["dataset"]["train_subset"]["n"]
    assert used[-1] == n and rec["metrics"]["k_clipped"]["n_train"] == n
    notes = [ln for ln in err.splitlines() if "clipped" in ln]
    assert len(notes) == 1, notes
    assert re.search(rf"train subset fraction 0\.1 has {n} images: k \[10, 20, 100, 200\] clipped to "
                     rf"{re.escape(str(used))}", notes[0]), notes[0]


def test_knn_record_has_calibration_recomputable_from_its_sidecar(tiny, tmp_path, capsys):
    from satbench.records.predictions import predictions_for_record
    from satbench.stats.calibration import calibration_errors

    res = tmp_path / "res"
    assert main(["run", "--task", "knn", "--weights", "random", "--scales", "0.25", "0.125", "--k", "5", "20",
                 "--resamples", "400", "--results-dir", str(res), "--no-progress", "--num-workers", "0"]) == 0
    out = capsys.readouterr().out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("calibration (k=20, mean over 2 scales): ECE ")]
    (rec,) = records(res)
    cal, meta = rec["summary"]["calibration"], rec["metrics"]["calibration"]
    assert cal["k"] == 20 and set(meta["per_scale"]) == {"0.25", "0.125"}
    assert meta["binning"]["name"] == "uniform15" and meta["temperature_scaling"]["applied"] is False
    assert "not logits" in meta["temperature_scaling"]["reason"] and "1/k" in meta["binning_choice"]
    preds = predictions_for_record(res / f"{Path(rec['predictions']['file']).name.removesuffix('.preds.npz')}.json")
    assert set(preds.conf) == {"knn_s0.25_k20", "knn_s0.125_k20"} and rec["predictions"]["format"] == "satbench.preds/2"
    per = []
    for scale in ("0.25", "0.125"):
        key = f"knn_s{scale}_k20"
        c = preds.conf[key]
        assert ((c > 0) & (c <= 1)).all() and meta["per_scale"][scale]["unanimous_fraction"] == float((c == 1).mean())
        mine = calibration_errors(c, preds.correct(key))
        per.append(mine)
        for name in ("ece", "rms", "mce"):
            assert meta["per_scale"][scale][name] == pytest.approx(mine[name], abs=1e-9)
    for name in ("ece", "rms", "mce"):
        assert cal[name] == pytest.approx((per[0][name] + per[1][name]) / 2, abs=1e-9)
        lo, hi = cal["ci"][name]
        assert lo <= cal[name] <= hi and f"{name.upper()} {cal[name]:.2f} [{lo:.2f}, {hi:.2f}]" in line
    # the same line in `results show` and on the leaderboard's record card
    from satbench.leaderboard.runs import provenance_line

    assert main(["results", "--results-dir", str(res), "show", rec["id"]]) == 0
    assert line in capsys.readouterr().out.splitlines()
    assert provenance_line(rec)["calibration"] == line
