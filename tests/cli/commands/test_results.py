"""``satbench results ls|show|diff`` on the fixture records, and ``satbench plot RECORD`` from a prediction sidecar."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from satbench.cli.app import main
from support.paths import LEADERBOARD_FIXTURES

RECORDS = LEADERBOARD_FIXTURES / "records"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ls_lists_every_record_with_its_headline(capsys):
    code, out, _ = run(capsys, "results", "--results-dir", str(RECORDS), "ls")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:6] == ["date", "id", "task", "model", "weights", "dataset"] and len(lines) == 2 + 14
    seg = next(ln for ln in lines if "fix011" in ln)
    assert "2 of 80000 iters; train = val" in seg and "mIoU 16.68" in seg
    assert "top1_avg 97.90 [97.42, 98.31]" in next(ln for ln in lines if "fix007" in ln)
    assert "random (seed 0)" in next(ln for ln in lines if "fix003" in ln)
    code, out, _ = run(capsys, "results", "ls", "--results-dir", str(RECORDS), "--task", "linear")
    assert code == 0 and len(out.splitlines()) == 2 + 3  # fix008, fix009 (cached heads), fix014


def test_show_prints_provenance_and_the_paper_verdict(capsys):
    code, out, _ = run(capsys, "results", "show", "fix011", "--results-dir", str(RECORDS))
    assert code == 0
    assert "vs paper: no delta: 2 of the recipe's 80000 iterations; train = val" in out
    assert "protocol.params.iters" in out and "provenance.git_commit        1111111" in out
    code, out, _ = run(capsys, "results", "show", str(next(RECORDS.glob("*fix002.json"))))
    assert code == 0 and "like for like (delta -0.46 to the paper's 85.96)" in out


def test_diff_names_what_differs(capsys):
    code, out, _ = run(capsys, "results", "diff", "fix002", "fix005", "--results-dir", str(RECORDS))
    assert code == 0
    keys = [ln.split()[0] for ln in out.splitlines()[5:]]
    assert {"protocol.hash", "protocol.content.params.k", "protocol.content.params.k_report", "dataset.name"} <= set(keys)
    assert "model" not in keys and "weights.sha256" not in keys  # same model and weights: not listed
    code, out, _ = run(capsys, "results", "diff", "fix002", "fix003", "--results-dir", str(RECORDS))
    keys = [ln.split()[0] for ln in out.splitlines()[5:]]
    assert {"weights.source", "weights.sha256", "weights.seed"} <= set(keys) and "protocol.hash" not in keys
    code, out, _ = run(capsys, "results", "diff", "fix002", "fix002", "--results-dir", str(RECORDS))
    assert code == 0 and "no differences" in out


def test_diff_shows_split_hashes_transforms_and_commit(tmp_path, capsys):
    a = json.loads(next(RECORDS.glob("*fix002.json")).read_text())
    b = json.loads(json.dumps(a))
    b["id"] = "other1"
    b["dataset"]["split_hashes"]["val"] = "9" * 64
    b["extractor"] = {"transform": "Resize(256)+CenterCrop(224)"}
    b["provenance"]["git_commit"] = "2222222"
    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    code, out, _ = run(capsys, "results", "diff", str(tmp_path / "a.json"), str(tmp_path / "b.json"))
    assert code == 0
    rows = {ln.split()[0]: ln for ln in out.splitlines()[5:]}
    assert set(rows) == {"dataset.split_hashes.val", "extractor.transform", "provenance.git_commit"}
    assert "2222222222...222222" in rows["dataset.split_hashes.val"]


@pytest.mark.parametrize("argv,pattern", [
    (["results", "show", "nosuchrecord"], r"no record 'nosuchrecord'"),
    (["results", "show", "fix0"], r"'fix0' matches 14 records"),
])
def test_bad_record_names_are_one_line(capsys, argv, pattern):
    import re

    code, _, err = run(capsys, *argv, "--results-dir", str(RECORDS))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and re.search(pattern, lines[0])


def test_terminal_output_has_no_control_characters(tmp_path, capsys):
    rec = json.loads(next(RECORDS.glob("*fix002.json")).read_text())
    rec["model"] = "evil\x1b[2J\x1b[31mred"
    (tmp_path / "r.json").write_text(json.dumps(rec))
    code, out, _ = run(capsys, "results", "ls", "--results-dir", str(tmp_path))
    assert code == 0 and "\x1b" not in out and "evil\\x1b[2J" in out


# ----------------------------------------------------------------------------------------------------------------------
# satbench plot RECORD
# ----------------------------------------------------------------------------------------------------------------------
def _with_sidecar(tmp_path: Path, src: str, arrays: dict, **pred) -> Path:
    folder = tmp_path / "res"
    folder.mkdir(exist_ok=True)
    rec_path = folder / next(RECORDS.glob(f"*{src}.json")).name
    rec = json.loads(next(RECORDS.glob(f"*{src}.json")).read_text())
    side = folder / f"{rec_path.stem}.preds.npz"
    np.savez(side, **arrays)
    rec["predictions"] = {"file": side.name, "sha256": hashlib.sha256(side.read_bytes()).hexdigest(),
                          "keys": sorted(arrays), **pred}
    rec_path.write_text(json.dumps(rec))
    return rec_path


def test_plot_classification_record(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 20).astype(np.int64)
    p20 = np.where(rng.random(200) < 0.8, y, rng.integers(0, 10, 200)).astype(np.int64)
    rec = _with_sidecar(tmp_path, "fix002", {"y_true": y, "pred__knn_s1.0_k20": p20, "pred__knn_s0.125_k20": y,
                                             "pred__knn_s1.0_k10": y})
    code, _, err = run(capsys, "plot", str(rec), "--out", str(tmp_path / "plots"))
    assert code == 0, err
    files = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert files == [f"{rec.stem}.confusion.png", f"{rec.stem}.per_class.png"]
    assert all((tmp_path / "plots" / f).read_bytes()[:4] == b"\x89PNG" for f in files)
    code, _, err = run(capsys, "plot", str(rec), "--key", "knn_s9_k1", "--out", str(tmp_path / "plots"))
    assert code == 2 and "no predictions for --key 'knn_s9_k1'" in err and "knn_s0.125_k20" in err


def test_plot_segmentation_record(tmp_path, capsys):
    conf = np.zeros((3, 6, 6), dtype=np.int64)
    for i in range(3):
        conf[i] = np.diag([100, 80, 60, 40, 20, 5]) + 3
    rec = _with_sidecar(tmp_path, "fix011", {"confusion": conf})
    code, _, err = run(capsys, "plot", str(rec), "--out", str(tmp_path / "plots"))
    assert code == 0, err
    assert len(list((tmp_path / "plots").glob("*.png"))) == 2


def test_plot_refuses_records_without_or_with_bad_sidecars(tmp_path, capsys):
    code, _, err = run(capsys, "plot", str(next(RECORDS.glob("*fix002.json"))), "--out", str(tmp_path / "p"))
    assert code == 2 and "has no predictions sidecar" in err and len(err.strip().splitlines()) == 1
    y = np.arange(4, dtype=np.int64)
    rec = _with_sidecar(tmp_path, "fix002", {"y_true": y, "pred__top1": y})
    side = rec.parent / f"{rec.stem}.preds.npz"
    side.write_bytes(side.read_bytes() + b"x")
    code, _, err = run(capsys, "plot", str(rec), "--out", str(tmp_path / "p"))
    assert code == 2 and "does not match the record's predictions.sha256" in err
    data = json.loads(rec.read_text())
    data["predictions"]["file"] = "../../outside.preds.npz"
    rec.write_text(json.dumps(data))
    code, _, err = run(capsys, "plot", str(rec), "--out", str(tmp_path / "p"))
    assert code == 2 and "must be a plain file name" in err
    assert not (tmp_path / "p").exists()
    shutil.rmtree(tmp_path / "res")


@pytest.mark.parametrize("kind", ["huge", "fifo", "zero"])
@pytest.mark.parametrize("command", [["results", "show"], ["results", "diff"], ["plot"]])
def test_a_named_record_file_is_read_bounded(tmp_path, capsys, command, kind):
    """`results show|diff` and `plot` read a record file the user names as every record is read: a 3 GB sparse file,
    a FIFO or a link to /dev/zero is one line at once (no memory blow-up, no hang)."""
    import os
    import re
    import time

    bad = tmp_path / "bad.json"
    if kind == "huge":
        with open(bad, "wb") as fh:
            fh.truncate(3 << 30)
        pattern = r"is 3 GiB, larger than the 8 MiB allowed"
    elif kind == "fifo":
        os.mkfifo(bad)
        pattern = r"is a FIFO \(named pipe\), not a regular file"
    else:
        bad.symlink_to("/dev/zero")
        pattern = r"is a character device, not a regular file"
    good = next(RECORDS.glob("*.json"))
    extra = [str(good)] if command[-1] == "diff" else []
    t0 = time.perf_counter()
    code, _, err = run(capsys, *command, str(bad), *extra, "--results-dir", str(RECORDS))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and str(bad) in lines[0] and re.search(pattern, lines[0]), lines
    assert time.perf_counter() - t0 < 10


def test_a_record_is_found_by_any_unique_prefix_of_its_file_name(monkeypatch, capsys):
    """The timestamp `results ls` shows is enough (`plot` and `show` share find_record); an ambiguous prefix names
    the records it matches."""
    from satbench.cli.commands.results import find_record
    from support.paths import LEADERBOARD_FIXTURES

    folder = LEADERBOARD_FIXTURES / "records"
    rec = find_record("20261120T1015", folder)
    assert rec["_path"].endswith("20261120T101500_knn_satdino-vit_small-16_uc_merced_fix005.json")
    with pytest.raises(Exception, match=r"'20261120T10' matches 6 records"):
        find_record("20261120T10", folder)
    monkeypatch.setenv("SATBENCH_RESULTS", str(folder))
    assert main(["results", "show", "20261121T0805"]) == 0
    assert "fix009" in capsys.readouterr().out
