"""What a record says about itself (satbench/leaderboard/runs.py): weights without a sha256 are not like for like with a
paper and are never labelled or grouped by a truncated path."""

from __future__ import annotations

import json
import shutil

from satbench.cli.app import main
from satbench.leaderboard import build_tables, exclusions, latest_runs
from satbench.leaderboard.runs import weights_label, weights_tag
from satbench.records.results import read_records
from support.leaderboard_records import RECORDS


def _fix002_without_sha(**weights):
    """The fixture run that gets a delta (SatDINO S/16 on EuroSAT, the paper's protocol), its sha256 removed."""
    recs = read_records(RECORDS)
    rec = next(r for r in recs if r["id"] == "fix002")
    rec["weights"].update(sha256=None, **weights)
    return recs, rec


def test_weights_without_sha256_get_no_delta_and_the_reason():
    recs, rec = _fix002_without_sha()
    assert {e.code for e in exclusions(rec, r"satdino-knn-v1")} == {"unhashed-weights"}
    table = build_tables(recs, "knn")[0]
    run = next(r for r in table.rows if r.kind == "run" and "(no sha256)" in r.labels["source"])
    assert run.labels["source"] == "satbench, weights satdino_vit_small_16.pth (no sha256)"
    assert run.cells["eurosat"].value == 85.5 and run.cells["eurosat"].delta is None
    assert run.labels["vs"] == "no delta: weights without a sha256 (not known to be the released ones)"


def test_the_cli_table_says_why(tmp_path, capsys):
    folder = tmp_path / "records"
    shutil.copytree(RECORDS, folder)
    path = next(folder.glob("*_fix002.json"))
    rec = json.loads(path.read_text())
    rec["weights"]["sha256"] = None
    path.write_text(json.dumps(rec))
    assert main(["leaderboard", "--results-dir", str(folder), "--task", "knn"]) == 0
    out, err = capsys.readouterr()
    line = next(ln for ln in out.splitlines() if "(no sha256)" in ln and "85.50" in ln)
    assert "85.50 (" not in line and "no delta: weights without a sha256" in line and "warning" not in err


def test_different_unhashed_files_are_different_runs():
    recs, a = _fix002_without_sha(path="/models/satdino_a.pth")
    b = json.loads(json.dumps(a))
    b["weights"]["path"], b["provenance"]["date"] = "/models/satdino_b.pth", "2026-11-20T11:00:00+00:00"
    assert weights_tag(a) != weights_tag(b)
    assert weights_label(a) == "weights satdino_a.pth (no sha256)"
    runs = {r["weights"]["path"]: n for r, n in latest_runs([a, b])}
    assert runs == {"/models/satdino_a.pth": 1, "/models/satdino_b.pth": 1}


def test_random_and_hashed_weights_keep_their_labels():
    recs = {r["id"]: r for r in read_records(RECORDS)}
    assert weights_label(recs["fix002"]) == "weights abababababab"
    assert weights_label(recs["fix003"]) == "random weights (seed 0)"
    assert {e.code for e in exclusions(recs["fix003"], r"satdino-knn-v1")} == {"random-weights"}


def test_a_torchgeo_split_run_is_its_own_column_row_and_run_with_no_delta():
    """fix002 (SatDINO S/16 on EuroSAT, the paper's protocol, like for like) and the same run on TorchGeo's splits:
    the second gets a column, a row and a run group of its own, and no delta to the paper (its reason says why)."""
    import copy

    recs = read_records(RECORDS)
    a = next(r for r in recs if r["id"] == "fix002")
    b = copy.deepcopy(a)
    b["id"], b["_path"] = "fix002tg", "fix002tg.json"
    b["dataset"].update(split_family="torchgeo", split_use={"train": "fit", "val": "held-out", "test": "report"})
    assert exclusions(a, r"satdino-knn-v1") == []
    assert [e.code for e in exclusions(b, r"satdino-knn-v1")] == ["split-family"]
    assert len(latest_runs([a, b])) == 2
    table = build_tables(recs + [b], "knn")[0]
    assert dict(table.value_columns)["eurosat#torchgeo"] == "EuroSAT, torchgeo split"
    runs = [r for r in table.rows if r.kind == "run" and ("eurosat" in r.cells or "eurosat#torchgeo" in r.cells)]
    mine = [r for r in runs if "eurosat#torchgeo" in r.cells]
    assert len(mine) == 1 and list(mine[0].cells) == ["eurosat#torchgeo"]
    assert mine[0].cells["eurosat#torchgeo"].delta is None and "torchgeo split" in mine[0].labels["settings"]
    assert mine[0].labels["vs"] == "no delta: torchgeo splits (the papers use SatDINO's)"
    assert any(r.cells.get("eurosat") is not None and r.cells["eurosat"].delta is not None for r in runs)
