"""`satbench suite`: the plan (run / skip / missing), one record per (task, dataset), skipping comparable records,
--force, resuming after an interruption, failures that do not lose the other runs, and the comparability rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from satbench.cli.app import main
from satbench.suite.keys import RunKey, WeightsId, record_mismatch
from support.paths import CARDS

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--model", "satdino-test-tiny", "--weights", "random", "--datasets", "ucm-mini", "--num-workers", "0",
        "--no-progress", "--set", "knn.scales=0.125", "--set", "knn.k=5",
        "--set", "cached-linear.val_resize=36", "--set", "cached-linear.val_crop=32", "--set", "cached-linear.epochs=1",
        "--set", "cached-linear.lrs=1.0e-3", "--set", "cached-linear.weight_decays=0.0"]


@pytest.fixture(autouse=True)
def _cards(monkeypatch):
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))


@pytest.fixture
def res(tmp_path) -> Path:
    return tmp_path / "res"


def suite(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["suite", *argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


def plan_rows(out: str) -> dict[tuple[str, str], str]:
    """(task, dataset) -> status text from the printed plan table."""
    rows = {}
    for line in out.splitlines():
        if " to run, " in line:  # the end of the plan table
            break
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[0] in ("knn", "cached-linear", "linear", "finetune"):
            rows[(parts[0], parts[1])] = parts[3]
    return rows


# ---------------------------------------------------------------------------------------------------------------------
# Plan and dry run
# ---------------------------------------------------------------------------------------------------------------------
def test_dry_run_lists_what_runs_and_what_is_missing(capsys, res, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    rc, out, err = suite(capsys, *FAST[:4], "--datasets", "ucm-mini", "uc_merced", "whu-rs19", "--data-root", str(root),
                         "--results-dir", str(res), "--dry-run")
    assert rc == 0, err
    rows = plan_rows(out)
    assert rows[("knn", "ucm-mini")] == "run" and rows[("cached-linear", "ucm-mini")] == "run"
    assert rows[("knn", "uc_merced")].startswith(f"missing: not under {root}; get it with `satbench data download "
                                                 f"uc_merced --root {root}`")
    whu = rows[("knn", "whu-rs19")]
    assert "no public source" in whu and "satbench data prepare whu-rs19" in whu
    assert "2 to run, 0 skipped, 4 missing" in out
    assert not res.exists()  # a dry run writes nothing


def test_dry_run_names_where_missing_weights_go(capsys, res):
    rc, out, _ = suite(capsys, "--model", "satdino-vit_small-16", "--datasets", "ucm-mini", "--results-dir", str(res),
                       "--dry-run")
    assert rc == 0
    status = plan_rows(out)[("knn", "ucm-mini")]
    assert "are not in the cache and downloads are off" in status
    assert "weights/satdino-vit_small-16/satdino-vit_small-16.pth" in status
    rc, out, _ = suite(capsys, "--model", "satdino-test-tiny", "--datasets", "ucm-mini", "--results-dir", str(res),
                       "--dry-run")
    assert "declares no pretrain weights" in plan_rows(out)[("knn", "ucm-mini")]


def test_default_selection_follows_the_papers_tables():
    from satbench.suite.plan import SuiteConfig, pairs, select_datasets, select_tasks

    specs = select_datasets(None)
    names = [s.name for s in specs]
    assert "ucm-mini" not in names and {"eurosat", "resisc45", "uc_merced", "whu-rs19", "rs_c11", "siri-whu",
                                        "fmow"} <= set(names)
    default = {(t.name, d.name) for t, d in pairs(select_tasks(None), specs, named=False)}
    assert ("knn", "eurosat") in default and ("knn", "fmow") not in default
    assert ("cached-linear", "eurosat") in default and ("cached-linear", "fmow") in default
    linear = {(t.name, d.name) for t, d in pairs(select_tasks(["linear", "finetune"]), specs, named=False)}
    assert {d for t, d in linear if t == "linear"} == {"fmow"}  # the paper's linear table is fMoW
    assert "fmow" not in {d for t, d in linear if t == "finetune"}
    assert SuiteConfig().tasks is None


@pytest.mark.parametrize("argv, pattern", [
    (["--tasks", "segmentation"], "is not a classification task"),
    (["--tasks", "knnn"], "unknown task 'knnn'"),
    (["--datasets", "potsdam"], "potsdam is a segmentation dataset"),
    (["--datasets", "nosuch"], "unknown dataset 'nosuch'"),
    (["--set", "knn.scales"], "expected TASK.KEY=VALUE"),
    (["--set", "linear.epochs=1"], "name task 'linear', which this suite does not run"),
    (["--set", "knn.nosuch=1"], "unknown key nosuch"),
    (["--set", "knn.scales=-1"], "scales"),
    (["--protocol", "knn"], "expected TASK=PROTOCOL"),
])
def test_bad_selection_is_one_line(capsys, res, argv, pattern):
    rc, out, err = suite(capsys, "--model", "satdino-test-tiny", "--weights", "random", "--results-dir", str(res),
                         "--dry-run", *argv)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc != 0 and len(lines) == 1 and lines[0].startswith("satbench: error:"), err
    assert pattern in lines[0], lines[0]


# ---------------------------------------------------------------------------------------------------------------------
# Running, skipping, forcing
# ---------------------------------------------------------------------------------------------------------------------
def test_one_record_per_pair_then_skip_all_then_force(capsys, res, monkeypatch):
    rc, out, err = suite(capsys, *FAST, "--results-dir", str(res))
    assert rc == 0, err
    recs = records(res)
    assert sorted((r["task"], r["dataset"]["name"]) for r in recs) == [("cached-linear", "ucm-mini"),
                                                                       ("knn", "ucm-mini")]
    assert all(r["weights"]["source"] == "random" for r in recs)
    knn = next(r for r in recs if r["task"] == "knn")
    assert knn["protocol"]["overrides"] == {"scales": [0.125], "k": [5], "k_report": 5}
    assert "suite: 2 run, 0 skipped" in out
    assert "forward passes: 840 images; independent runs without a feature cache: 840 (saved 0, 0 %)" in out
    assert "kNN: mean top-1" in out and "Segmentation" not in out  # the leaderboard
    # the cached-linear run on a scene dataset is in its own table, never beside the paper's fMoW linear probe
    assert "Cached linear probe top-1 (%) on scene datasets" in out and "Linear probe top-1 (%) on fMoW" not in out

    import satbench.suite.run as S

    def no_load(*a, **k):
        raise AssertionError("the model must not be loaded when every pair is skipped")

    real_load = S.load_suite_model
    monkeypatch.setattr(S, "load_suite_model", no_load)
    rc, out, err = suite(capsys, *FAST, "--results-dir", str(res), "--no-leaderboard")
    assert rc == 0, err
    rows = plan_rows(out)
    assert rows[("knn", "ucm-mini")].startswith("skip (record ") and str(res) in rows[("knn", "ucm-mini")]
    assert "suite: 0 run, 2 skipped" in out and "forward passes: 0 images" in out
    assert len(records(res)) == 2
    monkeypatch.setattr(S, "load_suite_model", real_load)  # (never monkeypatch.undo(): it drops the isolated home)

    rc, out, err = suite(capsys, *FAST, "--results-dir", str(res), "--no-leaderboard", "--force")
    assert rc == 0, err
    recs = records(res)
    assert len(recs) == 4
    assert "forward passes: 0 images; independent runs without a feature cache: 840 (saved 840, 100 %)" in out
    by_task: dict[str, list] = {}
    for r in recs:
        by_task.setdefault(r["task"], []).append(r["summary"]["top1" if r["task"] != "knn" else "top1_avg"])
    assert all(len(set(v)) == 1 for v in by_task.values())  # the cached features give the same numbers


def test_a_record_from_satbench_run_counts_and_other_settings_do_not(capsys, res):
    assert main(["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random", "--scales", "0.125",
                 "--k", "5", "--num-workers", "0", "--no-progress", "--results-dir", str(res)]) == 0
    capsys.readouterr()
    rc, out, _ = suite(capsys, *FAST, "--results-dir", str(res), "--dry-run")
    rows = plan_rows(out)
    assert rows[("knn", "ucm-mini")].startswith("skip (record ") and rows[("cached-linear", "ucm-mini")] == "run"
    for other in (["--seed", "1"], ["--set", "knn.k=6"], ["--bf16"], ["--attn-impl", "sdpa"], ["--force"]):
        rc, out, _ = suite(capsys, *FAST, "--results-dir", str(res), "--dry-run", *other)
        assert plan_rows(out)[("knn", "ucm-mini")] == "run", other


# ---------------------------------------------------------------------------------------------------------------------
# Interruption, failures
# ---------------------------------------------------------------------------------------------------------------------
def test_interrupted_suite_resumes_and_reuses_cached_features(capsys, res, monkeypatch):
    import satbench.eval.cached_linear as CL

    real = CL.train_heads

    def interrupted(*a, **k):  # cached-linear is interrupted after its features were extracted and cached
        raise KeyboardInterrupt

    monkeypatch.setattr(CL, "train_heads", interrupted)
    rc, out, err = suite(capsys, *FAST, "--results-dir", str(res))
    assert rc == 130 and "interrupted after 1 run(s)" in err and "run the same command again" in err
    assert [r["task"] for r in records(res)] == ["knn"]
    monkeypatch.setattr(CL, "train_heads", real)
    rc, out, err = suite(capsys, *FAST, "--results-dir", str(res), "--no-leaderboard")
    assert rc == 0, err
    rows = plan_rows(out)
    assert rows[("knn", "ucm-mini")].startswith("skip") and rows[("cached-linear", "ucm-mini")] == "run"
    recs = records(res)
    assert sorted(r["task"] for r in recs) == ["cached-linear", "knn"]
    cl = next(r for r in recs if r["task"] == "cached-linear")
    assert cl["extra"]["extract"]["forward_images"] == 0 and cl["extra"]["extract"]["cached_views"]
    assert "forward passes: 0 images; independent runs without a feature cache: 420 (saved 420" in out


def test_a_failing_pair_keeps_the_others(capsys, res, monkeypatch):
    from satbench.errors import DataError
    from satbench.eval.task import get_task

    def broken(*a, **k):
        raise DataError("simulated unreadable image")

    monkeypatch.setattr(type(get_task("knn")), "run", broken)
    rc, out, err = suite(capsys, *FAST, "--results-dir", str(res), "--no-leaderboard")
    assert rc == 1
    assert "satbench: error: knn on ucm-mini: simulated unreadable image" in err
    assert [r["task"] for r in records(res)] == ["cached-linear"]
    assert "suite: 1 run, 0 skipped (comparable record), 0 missing, 1 failed" in out
    rc, out, err = suite(capsys, *FAST, "--results-dir", str(res), "--fail-fast", "--force")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2 and lines == ["satbench: error: simulated unreadable image"]
    assert len(records(res)) == 1  # stopped at knn, the first pair


def test_training_tasks_get_their_own_copy_of_the_model(capsys, res, monkeypatch):
    import satbench.api as api

    seen = []

    def fake_run(task, model=None, dataset=None, **kw):
        seen.append((task, model.loaded))
        raise api.SatbenchError("not run in this test")

    monkeypatch.setattr(api, "run", fake_run)
    rc, _, _ = suite(capsys, "--model", "satdino-test-tiny", "--weights", "random", "--datasets", "ucm-mini",
                     "--tasks", "knn", "cached-linear", "finetune", "--results-dir", str(res), "--no-leaderboard",
                     "--no-progress")
    assert rc == 1 and [t for t, _ in seen] == ["knn", "cached-linear", "finetune"]
    assert seen[0][1] is seen[1][1]  # the frozen-backbone tasks share the one loaded model
    assert seen[2][1] is not seen[0][1] and seen[2][1].model is not seen[0][1].model  # fine-tuning trains a copy


# ---------------------------------------------------------------------------------------------------------------------
# The comparability rule, field by field
# ---------------------------------------------------------------------------------------------------------------------
NORM = {"name": "uc_merced", "mean": [0.482, 0.488, 0.449], "std": [0.116, 0.102, 0.103]}


def base_record() -> dict:
    return {"task": "knn", "model": "m", "weights": {"source": "random", "path": None, "sha256": None, "seed": 0},
            "protocol": {"hash": "p" * 64}, "dataset": {"name": "ucm-mini", "split_hashes": {"train": "t", "val": "v"},
                                                         "normalization": dict(NORM)},
            "extractor": {"bf16": False, "model_options": {"pos_interp": "official", "attn_impl": "matmul"}},
            "extra": {}}


def base_key(**kw) -> RunKey:
    fields = dict(task="knn", model="m", weights=WeightsId(seed=0), protocol_hash="p" * 64, dataset="ucm-mini",
                  split_hashes={"train": "t", "val": "v"},
                  normalization={"name": "uc_merced", "mean": (0.482, 0.488, 0.449), "std": (0.116, 0.102, 0.103)},
                  bf16=False, model_options={"pos_interp": "official", "attn_impl": "matmul", "gsd_register": True},
                  option_defaults={"pos_interp": "official", "attn_impl": "matmul", "gsd_register": True}, seed=0)
    fields.update(kw)
    return RunKey(**fields)


def _set(rec: dict, path: str, value) -> dict:
    *head, last = path.split(".")
    node = rec
    for k in head:
        node = node[k]
    if value is _DEL:
        del node[last]
    else:
        node[last] = value
    return rec


_DEL = object()


def test_identical_runs_are_comparable():
    assert record_mismatch(base_record(), base_key()) is None
    # absent optional fields read as the defaults they stand for (older records)
    rec = base_record()
    del rec["extractor"]
    assert record_mismatch(rec, base_key()) is None


@pytest.mark.parametrize("path, value, why", [
    ("task", "cached-linear", "task"),
    ("model", "other", "model"),
    ("weights.seed", 1, "weights"),
    ("weights.seed", True, "weights"),
    ("weights", {"source": "file", "sha256": "a" * 64}, "weights"),
    ("protocol.hash", "q" * 64, "protocol hash"),
    ("protocol", {}, "protocol hash"),
    ("dataset.name", "uc_merced", "dataset"),
    ("dataset.split_hashes.train", "t2", "split files"),
    ("dataset.split_hashes.val", "v2", "split files"),
    ("dataset.split_hashes", "tv", "split files"),
    ("dataset.normalization", {**NORM, "mean": [0.5, 0.5, 0.5]}, "normalisation"),
    ("dataset.normalization", None, "normalisation"),
    ("extractor.bf16", True, "bf16"),
    ("extractor.bf16", "no", "bf16"),
    ("extractor.model_options.attn_impl", "sdpa", "model option attn_impl"),
    ("extractor.model_options.gsd_register", False, "model option gsd_register"),
    ("extra.seed", 3, "seed"),
])
def test_any_difference_means_not_comparable(path, value, why):
    msg = record_mismatch(_set(base_record(), path, value), base_key())
    assert msg is not None and why in msg, msg


@pytest.mark.parametrize("kw, why", [
    (dict(weights=WeightsId(seed=1)), "weights"),
    (dict(weights=WeightsId(sha256="a" * 64)), "weights"),
    (dict(bf16=True), "bf16"),
    (dict(seed=1, weights=WeightsId(sha256="a" * 64)), "weights"),
    (dict(model_options={"pos_interp": "size", "attn_impl": "matmul", "gsd_register": True}), "pos_interp"),
])
def test_any_difference_in_the_wanted_run_means_not_comparable(kw, why):
    msg = record_mismatch(base_record(), base_key(**kw))
    assert msg is not None and why in msg, msg


def test_released_weights_compare_by_sha256_and_seed_where_recorded():
    sha = "a" * 64
    rec = _set(base_record(), "weights", {"source": "cache", "path": "/w.pth", "sha256": sha, "seed": None})
    assert record_mismatch(rec, base_key(weights=WeightsId(sha256=sha))) is None
    assert "weights" in record_mismatch(rec, base_key(weights=WeightsId(sha256="b" * 64)))
    # a user option absent from an older record ran with its default: comparable only when the default is wanted
    old = _set(base_record(), "extractor.model_options", {})
    assert record_mismatch(old, base_key()) is None
    sdpa = dict(base_key().model_options, attn_impl="sdpa")
    assert "attn_impl" in record_mismatch(old, base_key(model_options=sdpa))
    # a task that records its seed (cached-linear) is comparable only at that seed
    rec = _set(base_record(), "extra.seed", 0)
    assert record_mismatch(rec, base_key()) is None and "seed" in record_mismatch(rec, base_key(seed=2))


@pytest.mark.slow
def test_sigint_then_rerun_resumes(capsys, res, tmp_path):
    """A real Ctrl-C (SIGINT to a `satbench suite` process) while cached-linear trains: exit 130, the kNN record kept;
    the same command again skips kNN and trains cached-linear from the features cached before the interrupt."""
    import os
    import signal
    import subprocess
    import sys
    import time

    slow = [a if a != "cached-linear.epochs=1" else "cached-linear.epochs=400" for a in FAST]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "satbench.cli", "suite", *slow, "--results-dir", str(res),
                             "--no-leaderboard"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 300
    while not list(res.glob("*_knn_*.json")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # cached-linear is extracting or training now
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "satbench: interrupted after 1 run(s)" in err
    assert [r["task"] for r in records(res)] == ["knn"]
    rc, out, err = suite(capsys, *FAST, "--results-dir", str(res), "--no-leaderboard")
    assert rc == 0, err
    rows = plan_rows(out)
    assert rows[("knn", "ucm-mini")].startswith("skip") and rows[("cached-linear", "ucm-mini")] == "run"
    assert sorted(r["task"] for r in records(res)) == ["cached-linear", "knn"]
