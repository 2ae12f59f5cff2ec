"""Leaderboard: layout that cannot be misread, the delta rule case by case, stdout documents, escaping per format,
golden md / csv / latex outputs of the hand-written fixture records (tests/fixtures/leaderboard/records)."""

from __future__ import annotations

import copy
import csv
import io
import json
import os

import pytest

from satbench.leaderboard.cells import table_grid

from satbench.cli.app import main
from satbench.leaderboard import build_tables, exclusions, latest_runs, load_references, render, render_document
from satbench.config.protocols import load_protocol
from satbench.records.results import make_record, read_records, write_record
from support.leaderboard_records import RANDOM, RECORDS, knn_record, seg_record
from support.paths import LEADERBOARD_FIXTURES

FIXTURES = LEADERBOARD_FIXTURES
GOLDEN = FIXTURES / "golden"
UPDATE = os.environ.get("SATBENCH_UPDATE_GOLDEN") == "1"

def rows_of(table, kind=None):
    return [r for r in table.rows if kind is None or r.kind == kind]


def cell_texts(table):
    return {(r.kind, r.labels.get("model"), r.labels.get("source"), h): t
            for r, g in zip(table.rows, table_grid(table)) for h, t in zip(table.headers, g)}


# ----------------------------------------------------------------------------------------------------------------------
# References
# ----------------------------------------------------------------------------------------------------------------------
def test_references_hold_the_papers_tables():
    refs = {r["_name"]: r for r in load_references()}
    sd = refs["satdino_readme"]
    assert sd["knn"]["values"]["eurosat"]["satdino-vit_small-16"] == 85.96
    assert sd["knn"]["values"]["siri-whu"]["satmae-vit_large"] == 77.76
    assert len(sd["knn"]["values"]) == 6 and all(len(v) == 4 for v in sd["knn"]["values"].values())
    assert sd["finetune"]["values"]["rs_c11"]["satdino-vit_base-16"] == 96.02
    assert sd["linear"]["values"]["fmow"]["satdino-vit_small-8"] == 73.53
    assert sd["segmentation"]["values"]["vaihingen"]["224"]["satmae-vit_large"] == 64.81
    assert refs["scalemae_table1"]["knn"]["values"]["uc_merced"] == {"scalemae-vit_large": 75.0, "satmae-vit_large": 69.8}


# ----------------------------------------------------------------------------------------------------------------------
# The misleading cases of the issue, one test each
# ----------------------------------------------------------------------------------------------------------------------
def test_paper_numbers_never_sit_in_a_run_row_or_under_a_run_label():
    """Random weights on EuroSAT: 85.96 is the paper's, in a row labelled paper + source, never the run's."""
    table = build_tables([knn_record(weights=RANDOM, avg=31.20)], "knn")[0]
    run = rows_of(table, "run")
    assert len(run) == 1 and run[0].labels["source"] == "satbench, random weights (seed 0)"
    assert [c.value for c in run[0].cells.values()] == [31.20]
    paper = [r for r in rows_of(table, "paper") if r.labels["model"] == "SatDINO ViT-S/16"]
    assert paper and paper[0].labels["source"] == "paper (SatDINO README)" and paper[0].cells["eurosat"].value == 85.96
    assert not any("satdino-vit_small-16" in h or "random" in h for h in table.headers)  # no run-labelled column
    md = render(table, "md")
    line = next(ln for ln in md.splitlines() if "random weights" in ln)
    assert "85.96" not in line and "31.20" in line and "no delta: random weights" in line


def test_a_cached_linear_run_is_never_in_the_papers_linear_table():
    """A cached-linear run (here an older record: task linear, method cached-heads) on fMoW sits in the cached linear
    probe's fMoW table, without paper rows; the paper's linear-probe table keeps only its own protocol family."""
    rec = make_record(task="linear", model="satdino-vit_small-16", weights=RANDOM,
                      protocol=load_protocol("cached-linear-v1").as_record(), dataset={"name": "fmow"}, metrics={},
                      summary={"top1": 12.34, "top5": 30.0})
    assert build_tables([rec], "linear")[0].key == "linear"
    assert not rows_of(build_tables([rec], "linear")[0], "run")
    assert any(r.labels["model"] == "SatDINO ViT-S/16" and r.cells["fmow"].value == 72.75
               for r in rows_of(build_tables([rec], "linear")[0], "paper"))
    (table,) = build_tables([rec], "cached-linear")
    assert table.key == "cached-linear-fmow" and table.title == "Cached linear probe top-1 (%) on fMoW"
    assert not rows_of(table, "paper")
    run = rows_of(table, "run")[0]
    assert run.labels["protocol"] == "cached-linear-v1" and run.cells["fmow"].value == 12.34
    assert run.cells["fmow"].delta is None and run.labels["vs"] == "no paper number"


def _tables_by_key():
    return {t.key: t for t in build_tables(read_records(RECORDS))}


def test_each_table_holds_one_protocol_family_on_its_own_datasets():
    """The fixture records: a cached-linear run on the user's own scene folder (fix013), the paper's linear protocol
    on EuroSAT (fix014) and a cached-linear run on fMoW (fix009) each land in the table of their family and dataset
    kind, never beside the paper's fMoW linear-probe numbers."""
    tables = _tables_by_key()
    runs = {k: sorted(c.record["id"] for r in rows_of(t, "run") for c in r.cells.values()) for k, t in tables.items()}
    assert runs["linear"] == ["fix008"] and tables["linear"].title == "Linear probe top-1 (%) on fMoW"
    assert runs["linear-scene"] == ["fix014"] and tables["linear-scene"].title == "Linear probe top-1 (%) on scene datasets"
    assert runs["cached-linear"] == ["fix013"]
    assert tables["cached-linear"].title == "Cached linear probe top-1 (%) on scene datasets"
    assert runs["cached-linear-fmow"] == ["fix009"]
    # the paper's fMoW numbers sit only in the paper's linear-probe fMoW table; no table mixes protocol families
    paper_fmow = [k for k, t in tables.items() for r in rows_of(t, "paper") if "fmow" in r.cells]
    assert set(paper_fmow) == {"linear"}
    for key in ("linear-scene", "cached-linear", "cached-linear-fmow"):
        assert not rows_of(tables[key], "paper") and "delta (in brackets)" not in " ".join(tables[key].notes)
    protocols = {k: {r.labels["protocol"] for r in rows_of(t, "run")} for k, t in tables.items() if "per_scale" not in k}
    assert protocols["linear"] == protocols["linear-scene"] == {"satdino-linear-v1"}
    assert protocols["cached-linear"] == protocols["cached-linear-fmow"] == {"cached-linear-v1"}
    assert [h for _, h in tables["cached-linear"].value_columns] == ["mydata"]
    assert [h for _, h in tables["linear-scene"].value_columns] == ["EuroSAT"]


def test_dataset_kind_is_read_from_the_record_else_the_catalog():
    from satbench.errors import ResultsError
    from satbench.leaderboard.layout import dataset_kind

    rec = json.loads(next(RECORDS.glob("*fix013.json")).read_text())
    assert dataset_kind(rec) == "scene"
    del rec["dataset"]["kind"]  # an older record: a folder outside the catalog is a scene folder
    assert dataset_kind(rec) == "scene"
    fmow = json.loads(next(RECORDS.glob("*fix008.json")).read_text())
    assert "kind" not in fmow["dataset"] and dataset_kind(fmow) == "fmow"  # by the catalog
    rec["dataset"]["kind"] = "tabular"
    rec["_path"] = "/r/x.json"
    with pytest.raises(ResultsError, match=r"^/r/x.json: dataset.kind is 'tabular', expected one of "):
        build_tables([rec], "cached-linear")
    rec["dataset"]["kind"] = ["scene"]
    with pytest.raises(ResultsError, match=r"^/r/x.json: dataset.kind is list, expected a string"):
        build_tables([rec], "cached-linear")


def test_title_claims_no_k_and_each_run_shows_its_own():
    rec = knn_record(ds="uc_merced", avg=91.1, overrides={"k": [5, 10], "k_report": 5})
    rec["summary"]["k"] = 5
    main_t, per_scale = build_tables([rec], "knn")
    assert "k=20" not in main_t.title and "k=" not in per_scale.title
    run = rows_of(main_t, "run")[0]
    assert run.labels["settings"].startswith("k=5") and run.labels["k"] == "5"
    assert per_scale.rows[0].labels["k"] == "5"
    assert {e.code for e in run.exclusions} == {"overrides"}
    # a run at the default k shows no k setting
    plain = rows_of(build_tables([knn_record()], "knn")[0], "run")[0]
    assert plain.labels["settings"] == "" and plain.labels["k"] == "20"


def test_short_segmentation_run_on_train_equals_val_gets_no_delta():
    """The issue's case: 2 iterations on one Potsdam tile with train = val was shown as 16.68 (-51.25)."""
    rec = seg_record(16.68, iters=2, train_equals_val=True, crop=224, kind="potsdam")
    table = build_tables([rec], "segmentation")[0]
    run = rows_of(table, "run")[0]
    cell = run.cells["potsdam@224"]
    assert cell.value == 16.68 and cell.delta is None
    assert {e.code for e in run.exclusions} == {"short-schedule", "train-equals-val"}
    md = render(table, "md")
    assert "16.68" in md and "(-51.25)" not in md and "2 of 80000 iters" in md and "train = val" in md


@pytest.mark.parametrize("fmt", ["csv", "md", "latex", "html"])
def test_stdout_is_exactly_the_document(capsys, fmt):
    if True:
        assert main(["leaderboard", "--results-dir", str(RECORDS), "--format", fmt]) == 0
        out, err = capsys.readouterr()
        assert "14 records in" in err and "records in" not in out
        if fmt == "csv":
            rows = list(csv.reader(io.StringIO(out)))
            assert rows[0][:3] == ["table", "title", "kind"] and all(len(r) == len(rows[0]) for r in rows)
        elif fmt == "md":
            assert out.startswith("### kNN")
        elif fmt == "latex":
            assert out.startswith("% satbench leaderboard") and out.count(r"\begin{table}") == 8
        else:
            assert out.startswith("<!DOCTYPE html>") and out.rstrip().endswith("</html>")


# ----------------------------------------------------------------------------------------------------------------------
# The delta rule, case by case
# ----------------------------------------------------------------------------------------------------------------------
def _knn_variants():
    base = knn_record()
    random_w = knn_record(weights=RANDOM)
    other = knn_record(protocol="scalemae-knn-v1")
    ov = knn_record(overrides={"scales": [1.0]})
    subset_new = knn_record(dataset={"name": "eurosat-small", "protocol_dataset": "eurosat", "is_subset": True})
    subset_old = knn_record(dataset={"name": "ucm-mini", "protocol_dataset": "uc_merced"})
    split = knn_record(dataset={"name": "eurosat", "protocol_dataset": "eurosat",
                                "official_split": {"train": "exact", "val": "no"}})
    edited = copy.deepcopy(knn_record())  # (as_record shares the cached protocol's content: copy before editing)
    edited["protocol"]["content"]["params"]["temperature"] = 0.1  # a locally edited protocol file, no overrides
    return [("like-for-like", base, set()), ("random", random_w, {"random-weights"}), ("protocol", other, {"protocol"}),
            ("overrides", ov, {"overrides"}), ("subset-field", subset_new, {"subset"}),
            ("subset-old-record", subset_old, {"subset"}), ("split", split, {"split"}),
            ("edited-protocol", edited, {"overrides"})]


@pytest.mark.parametrize("name,rec,codes", _knn_variants(), ids=[v[0] for v in _knn_variants()])
def test_knn_delta_rule_case_by_case(name, rec, codes):
    table = build_tables([rec], "knn")[0]
    run = rows_of(table, "run")[0]
    cells = [c for c in run.cells.values() if c.value is not None]
    assert {e.code for e in run.exclusions} == codes
    if codes:
        assert all(c.delta is None for c in cells) and run.labels["vs"].startswith("no delta: ")
    else:
        assert cells[0].delta == pytest.approx(85.50 - 85.96) and run.labels["vs"] == "like for like"
    assert table.notes[0].startswith("delta (in brackets) = run - paper row of the same model")


@pytest.mark.parametrize("name,kw,codes", [
    ("full-recipe", {}, set()),
    ("short", {"iters": 2000}, {"short-schedule"}),
    ("recipe-from-record", {"iters": 2000, "params": {"recipe_iters": 2000}}, set()),
    ("train-equals-val", {"train_equals_val": True}, {"train-equals-val"}),
    ("frozen", {"params": {"frozen": True}}, {"overrides"}),
    ("cfg-options", {"params": {"cfg_options": {"model.decode_head.channels": 256}}}, {"overrides"}),
], ids=lambda v: v if isinstance(v, str) else "")
def test_segmentation_delta_rule_case_by_case(name, kw, codes):
    table = build_tables([seg_record(**kw)], "segmentation")[0]
    run = rows_of(table, "run")[0]
    assert {e.code for e in run.exclusions} == codes
    cell = run.cells["vaihingen@512"]
    assert (cell.delta is None) == bool(codes)
    if not codes:
        assert cell.delta == pytest.approx(68.0 - 68.32)


def test_train_equals_val_fallback_for_old_records():
    rec = seg_record()
    rec["dataset"]["split_hashes"] = {"train": "a" * 64, "val": "a" * 64}
    assert {e.code for e in exclusions(rec, "upernet_.+")} == {"train-equals-val"}


def test_latest_of_several_runs_is_marked():
    recs = [knn_record(avg=80.0, date="2026-11-20T09:00:00"), knn_record(avg=85.5, date="2026-11-20T10:00:00")]
    assert [n for _, n in latest_runs(recs)] == [2]
    md = render(build_tables(recs, "knn")[0], "md")
    assert "85.50* (-0.46)" in md and "80.00" not in md and "latest of 2 runs" in md


def test_old_records_without_new_fields_still_render():
    """Records as older satbench versions wrote them (no content, no is_subset, no k in summary)."""
    ft = make_record(task="finetune", model="satdino-vit_small-8", weights={"source": "file", "sha256": "cd" * 32},
                     protocol={"name": "ft", "hash": "h"}, dataset={"name": "eurosat"}, metrics={},
                     summary={"top1": 98.0, "top5": 100.0})
    knn = make_record(task="knn", model="m", weights={"source": "file", "sha256": "ef" * 32},
                      protocol={"name": "satdino-knn-v1", "hash": "x"}, dataset={"name": "eurosat"}, metrics={},
                      summary={"top1_avg": 50.0})
    tables = build_tables([ft, knn])
    text = "".join(render(t, "md") for t in tables)
    assert "98.00" in text and "50.00" in text
    assert "protocol ft is not the paper's" in text  # an unknown protocol is never compared


def test_intervals_pm_or_bracket():
    rec = knn_record(model="satdino-vit_small-8", ds="whu-rs19", avg=97.90)
    rec["summary"]["ci"] = {"top1_avg": [97.42, 98.31]}
    table = build_tables([rec], "knn")[0]
    assert "97.90 ± 0.45 (-0.28)" in render(table, "md", "pm")
    assert "97.90 [97.42, 98.31] (-0.28)" in render(table, "md", "bracket")
    assert r"97.90 $\pm$ 0.45 ($-$0.28)" in render(table, "latex")
    row = next(r for r in csv.DictReader(io.StringIO(render(table, "csv"))) if r["kind"] == "run")
    assert (row["ci_lo"], row["ci_hi"], row["delta"]) == ("97.42", "98.31", "-0.28")


def test_a_headline_that_is_not_a_number_is_skipped_with_one_warning(tmp_path, capsys):
    """Reading a results folder skips an unusable record with one warning naming it (satbench.records.results.read_records,
    the one consistent rule); the number never reaches a table."""
    rec = knn_record()
    rec["summary"]["top1_avg"] = "=1+1"
    path = write_record(rec, tmp_path / "r")
    assert main(["leaderboard", "--results-dir", str(tmp_path / "r")]) == 0
    out, err = capsys.readouterr()
    err = [ln for ln in err.strip().splitlines() if "skipped" in ln]
    assert len(err) == 1 and str(path) in err[0] and "top1_avg" in err[0], err
    assert "=1+1" not in out


def test_empty_results_still_show_paper_tables(tmp_path, capsys):
    (tmp_path / "none").mkdir()
    assert main(["leaderboard", "--results-dir", str(tmp_path / "none"), "--task", "knn"]) == 0
    out, err = capsys.readouterr()
    assert "0 records" in err and "93.21" in out and "| SatDINO ViT-S/16 | paper (SatDINO README)" in out
    assert "delta (in brackets)" not in out  # no runs, no delta rule
    assert main(["leaderboard", "--results-dir", str(tmp_path / "nonee"), "--task", "knn"]) == 2
    assert "nonee: no such folder" in capsys.readouterr().err


def test_out_writes_one_file_per_table_and_the_plot(tmp_path, capsys):
    assert main(["leaderboard", "--results-dir", str(RECORDS), "--format", "latex", "--out", str(tmp_path / "lb")]) == 0
    files = sorted(p.name for p in (tmp_path / "lb").iterdir())
    assert files == ["00_knn.tex", "01_knn_per_scale.tex", "02_finetune.tex", "03_linear.tex", "04_linear-scene.tex",
                     "05_cached-linear.tex", "06_cached-linear-fmow.tex", "07_segmentation.tex", "knn_scales.png"]
    assert (tmp_path / "lb" / "knn_scales.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "wrote" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------------------------------
# Escaping: one layer per format
# ----------------------------------------------------------------------------------------------------------------------
def hostile_record():
    rec = knn_record(model="=HYPERLINK(\"http://x\")|a*b_c&d%e$f#g{h}~^\\",
                     dataset={"name": "<img src=x onerror=alert(1)>|x",
                              "protocol_dataset": "<img src=x onerror=alert(1)>|x"})
    return rec


def test_markdown_pipe_and_html_in_names_do_not_break_the_table():
    table = build_tables([hostile_record()], "knn")[0]
    md = render(table, "md")
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    n_cols = len(table.headers)
    for ln in lines:  # every row still has exactly n_cols cells
        assert ln.replace("\\|", "").count("|") == n_cols + 1, ln
    assert "<img" not in md and "&lt;img src=x onerror=alert(1)&gt;" in md


def test_csv_neutralises_formulas_but_keeps_negative_numbers():
    rec = hostile_record()
    neg = knn_record(avg=85.50)  # delta -0.46: a number, not text
    text = render(build_tables([rec, neg], "knn")[0], "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    hostile = [r for r in rows if r["kind"] == "run" and "HYPERLINK" in r["model"]]
    assert hostile and all(r["model"].startswith("'=HYPERLINK") for r in hostile)
    for r in rows:  # no text cell starts a formula
        for k, v in r.items():
            if k not in ("value", "ci_lo", "ci_hi", "delta", "paper", "runs"):
                assert not v.startswith(("=", "+", "-", "@")), (k, v)
    assert [r["delta"] for r in rows if r["kind"] == "run" and r["delta"]] == ["-0.46"]
    assert "\n-0.46," not in text and ",-0.46," in text  # written as a bare number


def test_csv_text_cell_rules():
    from satbench.leaderboard.escape import csv_text

    assert csv_text("-1.25") == "'-1.25"  # text that looks like a number is still text
    assert csv_text("@SUM(A1)") == "'@SUM(A1)" and csv_text("+1") == "'+1" and csv_text("=1") == "'=1"
    assert csv_text("satdino") == "satdino"


def test_latex_escapes_every_special_character():
    tex = render(build_tables([hostile_record()], "knn")[0], "latex")
    line = next(ln for ln in tex.splitlines() if "HYPERLINK" in ln)
    assert r"\&d\%e\$f\#g\{h\}\textasciitilde{}\textasciicircum{}\textbackslash{}" in line
    assert r"a*b\_c" in line and r"\textless{}img" in tex


# ----------------------------------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------------------------------
def test_knn_plot_shares_y_and_keeps_the_legend_off_the_data():
    from satbench.leaderboard import knn_scales_figure

    recs = read_records(RECORDS)
    fig = knn_scales_figure(recs)
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 5 and len({ax.get_ylim() for ax in axes}) == 1
    assert all(ax.get_legend() is None for ax in axes) and len(fig.legends) == 1
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend_box = fig.legends[0].get_window_extent(renderer)
    assert not any(legend_box.overlaps(ax.get_window_extent(renderer)) for ax in axes)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("paper (SatDINO README)" in t for t in labels)  # the papers' points are labelled as such
    import matplotlib.pyplot as plt

    plt.close(fig)


# ----------------------------------------------------------------------------------------------------------------------
# Golden files
# ----------------------------------------------------------------------------------------------------------------------
def _normalise(text: str) -> str:
    return text.replace(str(RECORDS), "<records>")


@pytest.mark.parametrize("fmt,ext", [("md", "md"), ("csv", "csv"), ("latex", "tex")])
def test_golden_documents(fmt, ext):
    records = read_records(RECORDS)
    text = _normalise(render_document(build_tables(records), fmt))
    golden = GOLDEN / f"leaderboard.{ext}"
    if UPDATE:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text(), f"{golden} differs (SATBENCH_UPDATE_GOLDEN=1 rewrites it after review)"


def test_fixture_records_cover_every_case():
    recs = read_records(RECORDS)
    assert len(recs) == 14
    tables = {t.key: t for t in build_tables(recs)}
    codes = {e.code for t in tables.values() for r in t.rows for e in r.exclusions}
    # ("protocol" is no longer among them: a run of another protocol family sits in its own table, beside no paper)
    assert codes == {"random-weights", "overrides", "subset", "split", "short-schedule", "train-equals-val"}
    deltas = [c.delta for t in tables.values() for r in t.rows for c in r.cells.values() if c.delta is not None]
    assert len(deltas) == 5  # knn S/16 EuroSAT, knn S/8 WHU-RS19 (ci + seeds), linear, finetune, segmentation
    json.loads((RECORDS / sorted(p.name for p in RECORDS.iterdir())[6]).read_text())["summary"]["seeds"]
