"""Sanity of what a record's numbers mean (satbench/records/checks.py, applied by satbench.records.results.record_problem):
one bad record of the real fixture folder is skipped with one warning naming the file and the field, and the rest of
the folder still renders, for `leaderboard` and `results ls` alike."""

from __future__ import annotations

import json
import shutil

import pytest

from satbench.cli.app import main
from satbench.errors import ResultsError
from satbench.leaderboard import build_tables
from satbench.records.checks import value_problem
from satbench.records.results import read_records
from support.leaderboard_records import RECORDS


def _folder(tmp_path, fixture: str, mutate):
    """A copy of the fixture records with record ``fixture`` (e.g. ``fix007``) changed by ``mutate(rec)``."""
    folder = tmp_path / "records"
    shutil.copytree(RECORDS, folder)
    path = next(folder.glob(f"*_{fixture}.json"))
    rec = json.loads(path.read_text())
    mutate(rec)
    path.write_text(json.dumps(rec))
    return folder, path


def _set(*keys, value):
    def mutate(rec):
        node = rec
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return mutate


def _leaderboard(capsys, folder, *extra):
    rc = main(["leaderboard", "--results-dir", str(folder), *extra])
    out, err = capsys.readouterr()
    return rc, out, err


def _one_warning(err: str, path, field: str) -> str:
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1, err
    assert warnings[0].startswith(f"satbench: warning: skipped {path}: {field} "), warnings[0]
    return warnings[0]


#: A number each fixture record puts in the main tables (knn S/16 and S/8, linear, segmentation).
SHOWN = {"fix002": "85.50", "fix007": "97.90", "fix008": "73.00", "fix012": "68.00"}


def _rest_renders(out: str, err: str, changed: str) -> None:
    assert "13 records in" in err
    assert all(text in out for fixture, text in SHOWN.items() if fixture != changed)


# ----------------------------------------------------------------------------------------------------------------------
# Rule 1: accuracy-like numbers are finite percentages in [0, 100]
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture,keys,value,shown", [
    ("fix007", ("summary", "top1_avg"), 150.0, "150.00"),
    ("fix007", ("summary", "top1_avg"), -5.0, "-5.00"),
    ("fix007", ("summary", "top1_avg"), 1e308, "1000000000"),
    ("fix007", ("summary", "top5_avg"), 100.5, None),
    ("fix001", ("summary", "top1_per_scale", "0.5"), 101.0, "101.00"),
    ("fix010", ("summary", "top1"), 100.01, "100.01"),
    ("fix012", ("summary", "mIoU"), -0.5, "-0.50"),
], ids=["over-100", "negative", "1e308", "top5-over-100", "per-scale", "finetune-top1", "seg-miou"])
def test_percentage_out_of_range_is_skipped_with_one_warning(tmp_path, capsys, fixture, keys, value, shown):
    folder, path = _folder(tmp_path, fixture, _set(*keys, value=value))
    rc, out, err = _leaderboard(capsys, folder)
    assert rc == 0
    field = keys[0] + "." + keys[1] + (f"[{keys[2]}]" if len(keys) > 2 else "")
    line = _one_warning(err, path, field)
    assert "must be a percentage in [0, 100]" in line
    if shown:
        assert shown not in out
    _rest_renders(out, err, fixture)


def test_percentage_bounds_themselves_are_valid(tmp_path, capsys):
    folder, path = _folder(tmp_path, "fix010", _set("summary", "top1", value=100))
    rc, out, err = _leaderboard(capsys, folder, "--task", "finetune")
    assert rc == 0 and "warning" not in err and "100.00" in out
    rec = json.loads(path.read_text())
    rec["summary"]["top1"] = 0
    assert value_problem(rec) is None


# ----------------------------------------------------------------------------------------------------------------------
# Rule 2: an interval is [lo, hi], lo <= value <= hi (within 1e-9), inside [0, 100]
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ci,why", [
    ([99.0, 97.0], "must be [lo, hi] with lo <= hi"),
    ([10.0, 20.0], "does not contain its value 97.9"),
    ([97.0, 100.5], "must lie in [0, 100]"),
    ([-1.0, 98.0], "must lie in [0, 100]"),
], ids=["reversed", "not-covering", "above-100", "below-0"])
def test_bad_interval_is_skipped_and_never_printed(tmp_path, capsys, ci, why):
    folder, path = _folder(tmp_path, "fix007", _set("summary", "ci", value={"top1_avg": ci}))
    for interval in ("pm", "bracket"):
        rc, out, err = _leaderboard(capsys, folder, "--interval", interval)
        assert rc == 0
        assert why in _one_warning(err, path, "summary.ci.top1_avg")
        assert "± -" not in out and "97.90" not in out
        _rest_renders(out, err, "fix007")


def test_interval_touching_its_value_within_tolerance_is_kept(tmp_path, capsys):
    folder, _ = _folder(tmp_path, "fix007", _set("summary", "ci", value={"top1_avg": [97.9 + 5e-10, 98.3]}))
    rc, out, err = _leaderboard(capsys, folder, "--task", "knn")
    assert rc == 0 and "warning" not in err and "97.90 ± 0.22 (n=5)" in out  # kept (a seeds aggregate shows its sd)


def test_segmentation_interval_must_contain_its_miou(tmp_path, capsys):
    folder, path = _folder(tmp_path, "fix012", _set("summary", "ci", value={"mIoU": [70.0, 72.0]}))
    rc, out, err = _leaderboard(capsys, folder)
    assert rc == 0 and "does not contain its value 68.0" in _one_warning(err, path, "summary.ci.mIoU")
    _rest_renders(out, err, "fix012")


# ----------------------------------------------------------------------------------------------------------------------
# Rule 3: a wrongly typed field skips that record (named), never the whole folder, never silently
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture,keys,value,field,why", [
    ("fix007", ("summary", "k"), "twenty", "summary.k", "must be a positive integer"),
    ("fix007", ("summary", "k"), 0, "summary.k", "must be a positive integer"),
    ("fix007", ("metrics", "k_report"), 2.5, "metrics.k_report", "must be a positive integer"),
    ("fix007", ("summary", "seeds", "n"), "five", "summary.seeds.n", "must be a positive integer"),
    ("fix007", ("summary", "seeds", "n"), 4, "summary.seeds.values", "must be a list of n = 4 numbers"),
    ("fix007", ("summary", "seeds", "mean"), 197.9, "summary.seeds.mean", "must be a percentage in [0, 100]"),
    ("fix007", ("provenance", "date"), "yesterday", "provenance.date", "must be an ISO 8601 date and time"),
    ("fix002", ("weights", "sha256"), "abab", "weights.sha256", "must be 64 hexadecimal digits"),
    ("fix002", ("weights", "sha256"), "zz" * 32, "weights.sha256", "must be 64 hexadecimal digits"),
    ("fix003", ("weights", "seed"), "zero", "weights.seed", "must be an integer or null"),
    ("fix011", ("protocol", "params", "iters"), "two", "protocol.params.iters", "must be a positive integer"),
], ids=["k-text", "k-zero", "k_report-float", "seeds-n-text", "seeds-n-mismatch", "seeds-mean", "date",
        "sha-short", "sha-not-hex", "seed-text", "seg-iters-text"])
def test_wrongly_typed_field_skips_only_that_record(tmp_path, capsys, fixture, keys, value, field, why):
    folder, path = _folder(tmp_path, fixture, _set(*keys, value=value))
    rc, out, err = _leaderboard(capsys, folder)
    assert rc == 0
    assert why in _one_warning(err, path, field)
    _rest_renders(out, err, fixture)
    assert main(["results", "ls", "--results-dir", str(folder)]) == 0
    out, err = capsys.readouterr()
    _one_warning(err, path, field)
    assert out.count("\n") >= 11


def test_every_fixture_record_is_sane():
    skipped = []
    assert len(read_records(RECORDS, on_skip=lambda p, why: skipped.append((p, why)))) == 14 and not skipped


def test_records_given_directly_are_checked_too():
    recs = read_records(RECORDS)
    bad = next(r for r in recs if r["id"] == "fix007")
    bad["summary"]["top1_avg"] = 150.0
    with pytest.raises(ResultsError, match=r"fix007\.json: summary\.top1_avg must be a percentage in \[0, 100\]"):
        build_tables(recs)


# ----------------------------------------------------------------------------------------------------------------------
# The statistics layer's nested forms (satbench.stats.fields): per-scale intervals and robustness summaries
# ----------------------------------------------------------------------------------------------------------------------
def _fix007():
    return next(r for r in read_records(RECORDS) if r["id"] == "fix007")


def test_per_scale_intervals_are_checked_scale_by_scale():
    rec = _fix007()
    rec["summary"]["ci"]["top1_per_scale"] = {"1.0": [99.0, 99.8], "0.5": [97.9, 98.9]}
    assert value_problem(rec) is None
    rec["summary"]["ci"]["top1_per_scale"]["0.5"] = [98.9, 97.9]
    assert value_problem(rec) == "summary.ci.top1_per_scale[0.5] [98.9, 97.9] must be [lo, hi] with lo <= hi"
    rec["summary"]["ci"]["top1_per_scale"]["0.5"] = [90.0, 95.0]
    assert value_problem(rec) == "summary.ci.top1_per_scale[0.5] [90.0, 95.0] does not contain its value 98.4"


def test_robustness_numbers_and_intervals():
    rec = _fix007()
    rec["summary"]["robustness"] = {"worst_scale_top1": 96.4, "drop_to_smallest_scale": 3.0,
                                    "auc_log2_scale": 97.9, "worst_scale": 0.125, "k": 20}
    # a drop may be negative; the bootstrap of a minimum is biased low, so its interval need not contain it
    rec["summary"]["ci"].update(drop_to_smallest_scale=[-1.0, 6.0], worst_scale_top1=[94.0, 96.0])
    assert value_problem(rec) is None
    rec["summary"]["robustness"]["drop_to_smallest_scale"] = -120.0
    assert value_problem(rec) == ("summary.robustness.drop_to_smallest_scale must be a difference of percentages "
                                  "in [-100, 100], got -120.0")
    rec["summary"]["robustness"]["drop_to_smallest_scale"] = 3.0
    rec["summary"]["robustness"]["auc_log2_scale"] = 100.5
    assert value_problem(rec).startswith("summary.robustness.auc_log2_scale must be a percentage in [0, 100]")


def test_runs_are_ordered_by_instant_not_by_text():
    """Dates with different UTC offsets order by the instant they name: 10:00+02:00 is before 09:00+00:00."""
    from satbench.records.checks import date_key

    early = {"provenance": {"date": "2026-11-20T10:00:00+02:00"}}
    late = {"provenance": {"date": "2026-11-20T09:00:00+00:00"}}
    naive = {"provenance": {"date": "2026-11-20T08:30:00"}}  # satbench's own older records: UTC
    assert sorted([late, early, naive], key=date_key) == [early, naive, late]
    assert date_key({}) < date_key(early)
