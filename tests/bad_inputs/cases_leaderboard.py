"""Bad-input cases of ``satbench leaderboard``, ``results`` and ``plot``: hostile strings in records (HTML, formulas,
markdown pipes, path traversal), numbers that are not numbers, records that are not records, prediction sidecars that
escape their folder, were changed, or carry a pickle that would create a marker file if it were ever unpickled."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

XSS = "<img src=x onerror=alert(1)>"


def _record(rid: str, **changes: Any) -> dict[str, Any]:
    """A valid kNN record written by hand (satbench.record/1)."""
    rec = {
        "schema": "satbench.record/1", "id": rid, "task": "knn", "model": "satdino-vit_small-16",
        "weights": {"source": "file", "path": "/w.pth", "sha256": "ab" * 32, "kind": "pretrain", "seed": None},
        "protocol": {"name": "satdino-knn-v1", "task": "knn", "hash": "f" * 64, "base_hash": "f" * 64, "overrides": {}},
        "dataset": {"name": "eurosat", "protocol_dataset": "eurosat", "official_split": {"train": "exact", "val": "exact"}},
        "metrics": {"k": [20], "k_report": 20},
        "summary": {"top1_avg": 85.5, "top1_per_scale": {"1.0": 86.5, "0.5": 84.5}, "k": 20},
        "extractor": {}, "timings": {}, "extra": {},
        "provenance": {"date": "2026-11-20T10:00:00+00:00", "git_commit": "1111111"},
    }
    for key, value in changes.items():
        node = rec
        *path, last = key.split("__")
        for p in path:
            node = node[p]
        node[last] = value
    return rec


def _folder(out: Path, name: str, *records: dict[str, Any]) -> Path:
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    for r in records:
        (d / f"20261120T100000_knn_{r['id']}.json").write_text(json.dumps(r))
    return d


class _Marker:
    """Unpickling this creates the marker file (what a malicious sidecar would do)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def add_cases(out: Path, res: Path, case, ctx: dict[str, Any]) -> None:
    lb = out / "leaderboard_cases"
    # --- hostile names: every format renders (escaped), no file lands outside --out -----------------------------------
    hostile = _folder(lb, "hostile", _record("h1", model='=HYPERLINK("http://x")|a', dataset__name=XSS,
                                             dataset__protocol_dataset=XSS),
                      _record("h2", model="../../lb_marker_model", dataset__name="../../../lb_marker_dataset",
                              dataset__protocol_dataset="../../../lb_marker_dataset"))
    for fmt in ("md", "csv", "latex", "html"):
        dest = lb / f"out_{fmt}"
        case(f"leaderboard-hostile-names-{fmt}", ["leaderboard", "--results-dir", hostile, "--format", fmt, "--out", dest],
             "ok", absent=[lb / "lb_marker_model", lb / "lb_marker_dataset", out / "lb_marker_dataset",
                           dest.parent / "lb_marker_model"],
             present=[dest / ("index.html" if fmt == "html" else f"00_knn.{'tex' if fmt == 'latex' else fmt}")])
    # --- values that are not what they claim: the record is skipped with a warning naming file and field ---------------------------------------------------------------------------
    case("leaderboard-headline-not-a-number",
         ["leaderboard", "--results-dir", _folder(lb, "nan_headline", _record("n1", summary__top1_avg="=1+1"))],
         "ok", r"warning: skipped .*n1\.json: summary\.top1_avg must be a number, got a string")
    case("leaderboard-headline-bool",
         ["leaderboard", "--results-dir", _folder(lb, "bool_headline", _record("n2", summary__top1_avg=True))],
         "ok", r"warning: skipped .*n2\.json: summary\.top1_avg must be a number, got a boolean")
    case("leaderboard-malformed-interval",
         ["leaderboard", "--results-dir", _folder(lb, "bad_ci", _record("n3", summary__ci={"top1_avg": "wide"}))],
         "ok", r"warning: skipped .*n3\.json: summary\.ci\.top1_avg must be \[lo, hi\] numbers")
    case("leaderboard-dataset-not-a-mapping",
         ["leaderboard", "--results-dir", _folder(lb, "bad_dataset", _record("n4", dataset="eurosat"))],
         "ok", r"warning: skipped .*n4\.json: dataset must be an object, got a string")
    case("leaderboard-per-scale-not-a-number",
         ["leaderboard", "--results-dir", _folder(lb, "bad_scale", _record("n5", summary__top1_per_scale={"1.0": "x"}))],
         "ok", r"warning: skipped .*n5\.json: summary\.top1_per_scale\[1\.0\] must be a number")
    # --- numbers that are numbers but cannot be true (satbench/records/checks.py): skipped, the folder still renders -----
    sane = [
        ("headline-over-100", {"summary__top1_avg": 150.0}, r"summary\.top1_avg must be a percentage in \[0, 100\]"),
        ("headline-negative", {"summary__top1_avg": -5.0}, r"summary\.top1_avg must be a percentage in \[0, 100\]"),
        ("headline-huge", {"summary__top1_avg": 1e308}, r"summary\.top1_avg must be a percentage in \[0, 100\]"),
        ("per-scale-over-100", {"summary__top1_per_scale": {"1.0": 101.0}},
         r"summary\.top1_per_scale\[1\.0\] must be a percentage in \[0, 100\]"),
        ("interval-reversed", {"summary__ci": {"top1_avg": [99.0, 97.0]}},
         r"summary\.ci\.top1_avg \[99\.0, 97\.0\] must be \[lo, hi\] with lo <= hi"),
        ("interval-not-covering", {"summary__ci": {"top1_avg": [10.0, 20.0]}},
         r"summary\.ci\.top1_avg \[10\.0, 20\.0\] does not contain its value 85\.5"),
        ("interval-over-100", {"summary__ci": {"top1_avg": [80.0, 120.0]}},
         r"summary\.ci\.top1_avg \[80\.0, 120\.0\] must lie in \[0, 100\]"),
        ("k-text", {"summary__k": "twenty"}, r"summary\.k must be a positive integer, got \"twenty\""),
        ("seeds-n-text", {"summary__seeds": {"n": "five"}}, r"summary\.seeds\.n must be a positive integer"),
        ("date-not-iso", {"provenance__date": "yesterday"}, r"provenance\.date must be an ISO 8601 date and time"),
        ("sha256-not-hex", {"weights__sha256": "not-a-hash"}, r"weights\.sha256 must be 64 hexadecimal digits"),
    ]
    for i, (cid, changes, pattern) in enumerate(sane):
        folder = _folder(lb, f"sane_{cid}", _record("ok1"), _record(f"v{i}", **changes))
        for command in (["leaderboard"], ["results", "ls"]):
            case(f"{'-'.join(command)}-{cid}", command + ["--results-dir", folder], "ok",
                 rf"warning: skipped .*v{i}\.json: {pattern}")
    blocker = lb / "out_is_a_file"
    blocker.write_text("not a folder\n")
    case("leaderboard-out-is-a-file", ["leaderboard", "--results-dir", hostile, "--out", blocker], "error",
         r"--out .*exists and is not a folder")
    # --- results ls / show / diff ----------------------------------------------------------------------------------------
    good = _folder(lb, "good", _record("g1"), _record("g2", weights__source="random", weights__seed=0))
    case("results-show-unknown-record", ["results", "show", "nosuchid", "--results-dir", good], "error",
         r"no record 'nosuchid'")
    other = lb / "not_a_record.json"
    other.write_text(json.dumps({"hello": "world"}))
    case("results-show-not-a-record", ["results", "show", other], "error", r"not_a_record\.json: not a satbench record")
    broken = lb / "broken_record.json"
    broken.write_text('{"schema": "satbench.record/1", "id": ')
    case("results-diff-broken-record", ["results", "diff", broken, "g1", "--results-dir", good], "error",
         r"broken_record\.json is not readable JSON")
    case("results-diff-ok", ["results", "diff", "g1", "g2", "--results-dir", good], "ok")
    # --- plot: prediction sidecars ---------------------------------------------------------------------------------------
    plots = lb / "plots"
    case("plot-record-without-predictions", ["plot", "g1", "--results-dir", good, "--out", plots], "error",
         r"has no predictions sidecar")
    side = lb / "side"
    side.mkdir(exist_ok=True)
    outside = lb / "outside.preds.npz"
    np.savez(outside, y_true=np.arange(3), pred__top1=np.arange(3))
    escape = _record("s1", predictions={"file": "../outside.preds.npz",
                                        "sha256": hashlib.sha256(outside.read_bytes()).hexdigest()})
    (side / "s1.json").write_text(json.dumps(escape))
    case("plot-sidecar-outside-the-record-folder", ["plot", side / "s1.json", "--out", plots], "error",
         r"must be a plain file name", present=[outside])
    changed = side / "s2.preds.npz"
    np.savez(changed, y_true=np.arange(3), pred__top1=np.arange(3))
    (side / "s2.json").write_text(json.dumps(_record("s2", predictions={"file": changed.name, "sha256": "0" * 64})))
    case("plot-sidecar-hash-mismatch", ["plot", side / "s2.json", "--out", plots], "error",
         r"does not match the record's predictions\.sha256")
    marker = lb / "PICKLE_RAN"
    pickled = side / "s3.preds.npz"
    payload = np.empty(1, dtype=object)
    payload[0] = _Marker(str(marker))
    np.savez(pickled, y_true=np.arange(3), pred__top1=payload)
    (side / "s3.json").write_text(json.dumps(_record("s3", predictions={
        "file": pickled.name, "sha256": hashlib.sha256(pickled.read_bytes()).hexdigest()})))
    case("plot-sidecar-with-a-pickle", ["plot", side / "s3.json", "--out", plots], "error",
         r"not a readable \.npz without pickles", absent=[marker])
