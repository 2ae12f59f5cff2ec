"""Leaderboard rendering from fixture records, with the papers' reference rows and deltas."""

from __future__ import annotations

import csv
import io

import pytest

from satbench.cli import main
from satbench.leaderboard import build_tables, latest_runs, load_references, render
from satbench.protocols import load_protocol
from satbench.results import make_record, write_record


def knn_record(model, ds, avg, *, random=False, date="2026-11-20T10:00:00", subset=False, overrides=None):
    proto = load_protocol("satdino-knn-v1")
    if overrides:
        proto = proto.with_overrides(**overrides)
    weights = ({"source": "random", "seed": 0, "sha256": None} if random else
               {"source": "file", "sha256": "ab" * 32, "path": "/w.pth", "seed": None})
    dataset = {"name": "ucm-mini" if subset else ds, "protocol_dataset": ds,
               "official_split": {"train": "no" if subset else "exact", "val": "no" if subset else "exact"}}
    rec = make_record(task="knn", model=model, weights=weights, protocol=proto.as_record(), dataset=dataset,
                      metrics={}, summary={"top1_avg": avg, "top1_per_scale": {"1.0": avg + 1, "0.5": avg - 1}})
    rec["provenance"]["date"] = date
    return rec


@pytest.fixture
def results(tmp_path):
    d = tmp_path / "res"
    write_record(knn_record("satdino-vit_small-16", "eurosat", 80.0, date="2026-11-20T09:00:00"), d)
    write_record(knn_record("satdino-vit_small-16", "eurosat", 85.50), d)  # latest: 85.50 - 85.96 = -0.46
    write_record(knn_record("satdino-vit_small-16", "uc_merced", 30.0, random=True, subset=True), d)
    write_record(knn_record("satdino-vit_small-16", "resisc45", 79.0, overrides={"scales": [1.0]}), d)
    ft = make_record(task="finetune", model="satdino-vit_small-8", weights={"source": "file", "sha256": "cd" * 32},
                     protocol={"name": "ft", "hash": "h"}, dataset={"name": "eurosat", "official_split": {"train": "exact"}},
                     metrics={}, summary={"top1": 98.0, "top5": 100.0})
    write_record(ft, d)
    seg = make_record(task="segmentation", model="satdino-vit_small-16", weights={"source": "file", "sha256": "ef" * 32},
                      protocol={"name": "seg", "hash": "s"}, dataset={"name": "potsdam"}, metrics={},
                      summary={"mIoU": 70.0, "crop": 512})
    write_record(seg, d)
    return d


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


def test_knn_table_reference_rows_deltas_latest(results):
    from satbench.results import read_records

    recs = read_records(results)
    assert [n for _, n in latest_runs([r for r in recs if r["task"] == "knn"])] == [2, 1, 1]
    knn = build_tables(recs, "knn")[0]
    md = render(knn, "md")
    # latest of two eurosat runs, with the delta to the paper's 85.96
    assert "85.50* (-0.46)" in md and "80.00" not in md
    assert "latest of 2 runs" in md
    # paper rows from both papers
    rows = {(r[0], r[1]): r for r in knn.rows}
    assert ("EuroSAT", "paper: satdino_readme") in rows and ("UC Merced", "paper: scalemae_table1") in rows
    assert "75.00" in rows[("UC Merced", "paper: scalemae_table1")]
    # subset: shown, clearly labelled, no delta; an overridden protocol: no delta either
    sub = rows[("ucm-mini (subset of UC Merced)", "satbench")]
    assert "30.00" in sub and "(" not in "".join(c for c in sub[2:] if c)
    res = rows[("RESISC45", "satbench")]
    assert "79.00" in "".join(res) and "(+" not in "".join(res) and "(-" not in "".join(res)


def test_other_tables_and_formats(results, tmp_path, capsys):
    code = main(["leaderboard", "--results-dir", str(results), "--format", "csv", "--out", str(tmp_path / "lb")])
    assert code == 0
    files = sorted(p.name for p in (tmp_path / "lb").iterdir())
    assert "knn_scales.png" in files and sum(f.endswith(".csv") for f in files) == 5
    assert (tmp_path / "lb" / "knn_scales.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ft = next((tmp_path / "lb").glob("*fine*.csv")).read_text()
    rows = list(csv.reader(io.StringIO(ft)))
    eu = [r for r in rows if r[0] == "EuroSAT" and r[1] == "satbench"][0]
    assert "98.00 (-0.76)" in eu  # vs S/8 98.76
    seg = next((tmp_path / "lb").glob("*segmentation*.csv")).read_text()
    assert "70.00 (-1.80)" in seg  # vs S/16 Potsdam 512: 71.80
    capsys.readouterr()
    assert main(["leaderboard", "--results-dir", str(results), "--task", "segmentation", "--format", "html"]) == 0
    out = capsys.readouterr().out
    assert "<table>" in out and "Potsdam 512" in out


def test_empty_results_still_show_paper_tables(tmp_path, capsys):
    (tmp_path / "none").mkdir()
    assert main(["leaderboard", "--results-dir", str(tmp_path / "none"), "--task", "knn"]) == 0
    out = capsys.readouterr().out
    assert "0 records" in out and "93.21" in out and "SatDINO ViT-S/16 (paper)" in out
    # a mistyped --results-dir is an error, not an empty leaderboard
    assert main(["leaderboard", "--results-dir", str(tmp_path / "nonee"), "--task", "knn"]) == 2
    assert "nonee: no such folder" in capsys.readouterr().err


def test_linear_records_appear_in_the_linear_table():
    """A record in the linear/finetune convention (summary top1/top5) shows up next to the paper's fMoW numbers."""
    from satbench.leaderboard import build_tables, render
    from satbench.results import make_record

    rec = make_record(task="linear", model="satdino-vit_small-16", weights={"source": "file", "sha256": "ab" * 32},
                      protocol={"name": "cached-linear-v1", "hash": "h" * 64}, dataset={"name": "uc_merced"},
                      metrics={}, summary={"top1": 61.23, "top5": 88.0})
    tables = build_tables([rec], "linear")
    text = "\n".join(render(t, "md") for t in tables)
    assert "61.23" in text and "73.53" in text  # the run and the paper's ViT-S/8 fMoW linear reference
