"""The leaderboard's corruption-robustness tables (satbench/leaderboard/robustness.py) from real kNN runs with
``--corruptions`` (tiny random ViT, 5 classes of ucm-mini): the record's clean top-1, mCA, relative drop and worst
type with their intervals in md, csv and html; one table per corruption protocol hash and per (types, severities)
set; records without corruptions add nothing; a malformed block is one line."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest

from satbench.cli.app import main
from support.tiny_runs import knn_corruption_run, small_scene_copy, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def runs(tmp_path, ucm_mini, monkeypatch):
    """Four real kNN runs in tmp_path/res (reo-v1 named explicitly: records of an older protocol version still
    tabulate under its own name and hash): reo-v1 gaussian_noise + jpeg at 1, 5 (twice: the latest is shown);
    a copy of reo-v1 with another seed (another hash), same set; reo-v1 haze at 3 (another set); one without
    corruptions."""
    import satbench
    import satbench.api as api
    from satbench.data.corruptions import load_corruption_protocol

    model = tiny_model()
    monkeypatch.setattr(api, "load", lambda *a, **k: model)
    data = small_scene_copy(tmp_path / "data", ucm_mini)
    src = load_corruption_protocol("reo-v1")[0].path
    other = tmp_path / "reo-seed1.yaml"
    text = open(src).read().replace("name: reo-v1", "name: reo-seed1").replace("  seed: 0\n", "  seed: 1\n")
    other.write_text(text)
    out = {"main": knn_corruption_run(tmp_path, data, corruption_protocol="reo-v1")}
    out["again"] = knn_corruption_run(tmp_path, data, corruption_protocol="reo-v1")
    out["seed1"] = knn_corruption_run(tmp_path, data, corruption_protocol=str(other))
    out["haze"] = knn_corruption_run(tmp_path, data, types=("haze",), severities=(3,), corruption_protocol="reo-v1")
    satbench.run("knn", model="satdino-vit_small-16", weights="random", dataset=str(data), results_dir=tmp_path / "res",
                 device="cpu", num_workers=0, progress=False, resamples=300, scales=[1.0], k=[5],
                 cache_dir=str(tmp_path / "cache"))
    assert out["seed1"]["summary"]["corruptions"]["protocol_hash"] != out["main"]["summary"]["corruptions"]["protocol_hash"]
    return tmp_path / "res", out


def _doc(res, fmt: str, capsys) -> str:
    capsys.readouterr()
    assert main(["leaderboard", "--results-dir", str(res), "--format", fmt]) == 0
    return capsys.readouterr().out


def _pm(v: float, ci) -> str:
    return f"{v:.2f} ± {(ci[1] - ci[0]) / 2:.2f}"


def _sections(doc: str) -> dict[str, str]:
    return {part.split("\n", 1)[0]: part for part in doc.split("### ")[1:] if part.startswith("Corruption robustness")}


def test_md_table_holds_the_records_figures_one_table_per_hash_and_set(runs, capsys):
    res, recs = runs
    doc = _doc(res, "md", capsys)
    tables = _sections(doc)
    assert len(tables) == 3  # reo-v1 {gn, jpeg} x {1, 5}; reo-seed1 the same set; reo-v1 haze x 3; the plain run: none
    for name, run in recs.items():
        s = run["summary"]["corruptions"]
        (title,) = [t for t in tables if f"{s['protocol']} {s['protocol_hash'][:12]}" in t
                    and t.endswith(f"{', '.join(s['types'])} x severities {', '.join(map(str, s['severities']))}")]
        body = tables[title]
        rows = [ln for ln in body.splitlines() if ln.startswith("| test-satdino") or ln.startswith("| satdino")]
        assert len(rows) == 1, body  # the latest run only; the other hash / set never shares the table
        cells = [c.strip() for c in rows[0].split("|")[1:-1]]
        star = "*" if name in ("main", "again") else ""
        assert cells[-4:] == [_pm(s["clean_top1"], s["ci"]["clean_top1"]) + star, _pm(s["mca"], s["ci"]["mca"]) + star,
                              _pm(s["relative_drop"], s["ci"]["relative_drop"]) + star,
                              _pm(s["worst_type_top1"], s["ci"]["worst_type_top1"]) + star]
        assert cells[-5] == s["worst_type"] and cells[4] == f"{s['protocol']} {s['protocol_hash'][:12]}"
        assert cells[2] == f"knn · {run['protocol']['name']}"
    # the figures are the statistics block's
    m = recs["main"]["metrics"]["corruptions"]
    s = recs["main"]["summary"]["corruptions"]
    assert (s["clean_top1"], s["mca"], s["worst_type"]) == (m["clean"]["top1"], m["mca"], m["worst_type"]["type"])


def test_csv_and_html_include_the_table(runs, capsys):
    res, recs = runs
    s = recs["haze"]["summary"]["corruptions"]
    key = f"robustness-{s['protocol_hash'][:12]}"
    rows = list(csv.DictReader(io.StringIO(_doc(res, "csv", capsys))))
    mine = [r for r in rows if r["table"].startswith("robustness-") and "haze" in r["settings"]]
    assert {r["table"] for r in mine} == {f"{key}-2"}  # reo-v1 with gaussian_noise + jpeg sorts first and gets the bare key
    got = {r["column"]: (float(r["value"]), float(r["ci_lo"]), float(r["ci_hi"])) for r in mine}
    assert got == {h: pytest.approx((s[k], *s["ci"][k])) for k, h in
                   (("clean_top1", "clean top-1"), ("mca", "mCA"), ("relative_drop", "relative drop (%)"),
                    ("worst_type_top1", "worst type top-1"))}
    assert all(r["settings"] == f"corruptions reo-v1 {s['protocol_hash'][:12]}: haze x severities 3; worst type haze"
               for r in mine)
    assert len({r["table"] for r in rows if r["table"].startswith("robustness-")}) == 3
    html = _doc(res, "html", capsys)
    sections = re.findall(r'<section class="lb-table" id="t-(robustness-[0-9a-f]{12}(?:-\d)?)">(.*?)</section>', html,
                          re.S)
    assert len(sections) == 3
    haze = [body for k, body in sections if "haze x severities 3" in body]
    assert len(haze) == 1
    for k in ("clean_top1", "mca", "relative_drop", "worst_type_top1"):
        assert f'data-sort="{s[k]!r}"' in haze[0] and _pm(s[k], s["ci"][k]) in haze[0]


def test_records_without_corruptions_add_no_table(tmp_path, ucm_mini, monkeypatch, capsys):
    import satbench
    import satbench.api as api

    model = tiny_model()
    monkeypatch.setattr(api, "load", lambda *a, **k: model)
    data = small_scene_copy(tmp_path / "data", ucm_mini)
    satbench.run("knn", model="satdino-vit_small-16", weights="random", dataset=str(data), results_dir=tmp_path / "res",
                 device="cpu", num_workers=0, progress=False, resamples=300, scales=[1.0], k=[5])
    doc = _doc(tmp_path / "res", "md", capsys)
    assert "### kNN" in doc or "###" in doc
    assert "Corruption robustness" not in doc


@pytest.mark.parametrize("edit, pattern", [
    (lambda s: s.update(protocol_hash="abc"), r"summary\.corruptions\.protocol_hash is 'abc'"),
    (lambda s: s.update(mca="high"), r"summary\.corruptions\.mca is 'high', expected a percentage"),
    (lambda s: s["ci"].update(mca=[80, 10]), r"summary\.corruptions\.ci\.mca is \[80\.0, 10\.0\], lo above hi"),
    (lambda s: s.update(types=["fog"]), r"summary\.corruptions\.types is \"\['fog'\]\""),
    (lambda s: s.update(worst_type="haze"), r"summary\.corruptions\.worst_type is 'haze'"),
    (lambda s: s.update(severities=[0]), r"summary\.corruptions\.severities is '\[0\]'"),
], ids=["hash", "mca", "interval", "types", "worst", "severities"])
def test_a_malformed_summary_is_one_line(runs, capsys, edit, pattern):
    res, recs = runs
    path = sorted(res.glob("*.json"))[0]
    rec = json.loads(path.read_text())
    if "corruptions" not in rec["summary"]:
        path = next(p for p in sorted(res.glob("*.json")) if "corruptions" in json.loads(p.read_text())["summary"])
        rec = json.loads(path.read_text())
    edit(rec["summary"]["corruptions"])
    path.write_text(json.dumps(rec))
    capsys.readouterr()
    code = main(["leaderboard", "--results-dir", str(res)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and err[-1].startswith("satbench: error:"), err
    assert path.name in err[-1] and re.search(pattern, err[-1]), err[-1]


def test_an_undefined_relative_drop_is_an_empty_cell(runs):
    from satbench.leaderboard.cells import table_grid
    from satbench.leaderboard.robustness import robustness_tables
    from satbench.records.results import read_records

    res, _ = runs
    records = read_records(res)
    for r in records:
        if "corruptions" in r["summary"]:
            r["summary"]["corruptions"]["relative_drop"] = None
            r["summary"]["corruptions"]["ci"]["relative_drop"] = None
    tables = robustness_tables(records)
    assert len(tables) == 3
    assert all(row[-2] == "" and row[-3] != "" for t in tables for row in table_grid(t))
    assert robustness_tables(records, "linear") == []  # another family's records only
