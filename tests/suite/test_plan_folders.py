"""`satbench suite --datasets` takes the user's own folders exactly as `satbench run --dataset DIR` does: a folder
under --data-root that is not in the catalog, or a folder path; opened by the same open_dataset, recorded the same
way (name, split hashes, normalisation), and resumed the same way (what is recorded is skipped)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from satbench.cli.app import main
from support.builders import scene_folder
from support.paths import CARDS

pytestmark = pytest.mark.usefixtures("one_thread")

MODEL = ["--model", "satdino-test-tiny", "--weights", "random", "--num-workers", "0", "--no-progress"]
SETS = ["--set", "knn.scales=0.125", "--set", "knn.k=5", "--set", "cached-linear.val_resize=36",
        "--set", "cached-linear.val_crop=32", "--set", "cached-linear.epochs=1", "--set", "cached-linear.lrs=1.0e-3",
        "--set", "cached-linear.weight_decays=0.0"]


@pytest.fixture(autouse=True)
def _cards(monkeypatch):
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))


@pytest.fixture
def data(tmp_path) -> Path:
    """``data/mydata``: a real 3-class scene folder (4 train / 2 val images per class) that is not in the catalog."""
    root = tmp_path / "data"
    scene_folder(root, "mydata", ["airplane", "beach", "forest"], train=4, val=2)
    return root


def records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


def suite(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["suite", *MODEL, *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def plan_rows(out: str) -> dict[tuple[str, str], str]:
    rows = {}
    for line in out.splitlines():
        if " to run, " in line:
            break
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[0] in ("knn", "cached-linear"):
            rows[(parts[0], parts[1])] = parts[3]
    return rows


def test_a_folder_under_the_data_root_runs_records_and_resumes(capsys, tmp_path, data, monkeypatch):
    res = tmp_path / "res"
    rc, out, err = suite(capsys, "--datasets", "mydata", "--data-root", str(data), "--results-dir", str(res), *SETS)
    assert rc == 0, err
    assert plan_rows(out) == {("knn", "mydata"): "run", ("cached-linear", "mydata"): "run"}
    recs = records(res)
    assert sorted(r["task"] for r in recs) == ["cached-linear", "knn"]
    for r in recs:
        d = r["dataset"]
        assert d["name"] == "mydata" and d["in_catalog"] is False and d["kind"] == "scene"
        assert d["root"] == str((data / "mydata").resolve()) and d["split_source"] == "folder"
    knn = next(r for r in recs if r["task"] == "knn")
    assert knn["dataset"]["native_size"] == 256 and knn["dataset"]["facts_source"]["native_size"].startswith("measured")
    assert knn["extra"]["normalization_computed"]["name"].startswith("computed:mydata")  # as `run` computes it
    # the leaderboard shows the cached-linear run in its own scene table, the user's column first in HTML
    assert "Cached linear probe top-1 (%) on scene datasets" in out and "mydata" in out

    # resumed the same way: nothing left to run, whether named by the data root or by its path; no model load
    import satbench.suite.run as S

    def no_load(*a, **k):
        raise AssertionError("the model must not be loaded when every pair is skipped")

    monkeypatch.setattr(S, "load_suite_model", no_load)
    monkeypatch.chdir(tmp_path)
    for named in (["mydata", "--data-root", str(data)], ["./data/mydata"], [str(data / "mydata")]):
        rc, out, err = suite(capsys, "--datasets", *named, "--results-dir", str(res), "--no-leaderboard", *SETS)
        assert rc == 0, err
        assert "0 to run, 2 skipped, 0 missing" in out, named
        assert all(v.startswith("skip (record ") for v in plan_rows(out).values())
    assert len(records(res)) == 2


def test_a_record_of_satbench_run_on_the_folder_counts_for_the_suite(capsys, tmp_path, data):
    """`run --dataset DIR` and the suite record a folder identically: the suite skips what `run` recorded."""
    res = tmp_path / "res"
    folder = str(data / "mydata")
    assert main(["run", "--task", "knn", *MODEL, "--dataset", folder, "--scales", "0.125", "--k", "5",
                 "--results-dir", str(res)]) == 0
    capsys.readouterr()
    (by_run,) = records(res)
    rc, out, err = suite(capsys, "--datasets", folder, "--results-dir", str(res), "--dry-run", *SETS)
    assert rc == 0, err
    rows = plan_rows(out)
    assert rows[("knn", folder)].startswith("skip (record ") and rows[("cached-linear", folder)] == "run"
    rc, out, err = suite(capsys, "--datasets", folder, "--tasks", "knn", "--results-dir", str(res), "--force",
                         "--no-leaderboard", "--set", "knn.scales=0.125", "--set", "knn.k=5")
    assert rc == 0, err
    by_suite = next(r for r in records(res) if r["id"] != by_run["id"])
    for key in ("name", "root", "split_hashes", "split_files", "normalization", "normalization_used", "native_size",
                "in_catalog", "kind", "protocol_dataset", "facts_source"):
        assert by_suite["dataset"].get(key) == by_run["dataset"].get(key), key
    assert by_suite["protocol"]["hash"] == by_run["protocol"]["hash"]
    assert by_suite["summary"]["top1_avg"] == by_run["summary"]["top1_avg"]


@pytest.mark.parametrize("name, pattern", [
    ("./nosuch", r"--datasets ./nosuch: dataset folder \S*nosuch does not exist"),
    ("nosuch", r"unknown dataset 'nosuch'.*; nor is it a dataset folder \(no folder \S*/data/nosuch"),
    ("seg", r"--datasets seg: \S*/data/seg is a segmentation dataset folder"),
])
def test_a_name_that_is_no_dataset_is_one_line(capsys, tmp_path, data, monkeypatch, name, pattern):
    import re

    (data / "seg" / "img_dir").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    rc, out, err = suite(capsys, "--datasets", name, "--data-root", str(data), "--results-dir", str(tmp_path / "r"),
                         "--dry-run")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc != 0 and len(lines) == 1 and lines[0].startswith("satbench: error:"), err
    assert re.search(pattern, lines[0]), lines[0]


def test_a_broken_folder_is_missing_with_its_reason(capsys, tmp_path, data):
    (data / "mydata" / "val.txt").write_text("./beach/nosuch.jpg\n")
    rc, out, err = suite(capsys, "--datasets", "mydata", "--data-root", str(data), "--results-dir",
                         str(tmp_path / "r"), "--dry-run")
    assert rc == 0, err
    status = plan_rows(out)[("knn", "mydata")]
    assert status.startswith("missing: mydata does not open: ") and "val.txt" in status
