"""``--corruptions`` on kNN, cached-linear and ``linear --evaluate`` (satbench/eval/corruption_eval.py,
satbench/stats/corruption.py): only the val split is corrupted, each (type, severity) is one cached view (a re-run
does no forward pass and gives the same record), the statistics are reproduced from the sidecar by an independent
computation, sharded extraction corrupts every image as the single process does, and a run without the flag keeps
its protocol hash and record."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from satbench.cli.app import main
from support.tiny_runs import small_scene_copy, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")

TYPES = ["gaussian_noise", "jpeg"]


@pytest.fixture
def counted(monkeypatch):
    import satbench.api as api

    calls: dict[str, int] = {}
    model = tiny_model(calls)
    monkeypatch.setattr(api, "load", lambda *a, **k: model)
    return calls


def _records(folder: Path) -> list[dict]:
    return [{**json.loads(p.read_text()), "_path": str(p)} for p in sorted(folder.glob("*.json"))]


def _exact_mcnemar(b: int, c: int) -> float:
    """Two-sided exact McNemar, written out with math.comb (independent of satbench.stats.significance)."""
    n = b + c
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n)


def _holm(ps: list[float]) -> list[float]:
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    out, run = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        run = max(run, min(1.0, (len(ps) - rank) * ps[i]))
        out[i] = run
    return out


KNN = ["run", "--task", "knn", "--weights", "random", "--scales", "0.125", "--k", "5", "20", "--no-progress",
       "--batch-size", "128", "--num-workers", "0", "--resamples", "300"]


def test_knn_corruptions_end_to_end_cached_rerun_equals_cold(counted, tmp_path, capsys):
    from satbench.config.protocols import load_protocol
    from satbench.records.predictions import predictions_for_record

    res, cache = tmp_path / "res", tmp_path / "cache"
    argv = KNN + ["--corruptions", *TYPES, "--severities", "1", "5", "--results-dir", str(res),
                  "--cache-dir", str(cache)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "corruptions (reo-v2" in out and "mCA" in out  # the default corruption protocol and "gaussian_noise" in out
    cold_calls = counted.get("images", 0)
    assert cold_calls == 336 + 84 + 4 * 84  # clean train + val, then the val split once per condition
    (cold,) = _records(res)
    assert main(argv) == 0
    assert counted.get("images", 0) == cold_calls  # the re-run: no forward pass at all
    # the re-run's record is the new file (names sort by second and hash, so two runs in one second may sort either way)
    (warm,) = [r for r in _records(res) if r["_path"] != cold["_path"]]
    assert warm["extra"]["corruptions"]["extraction"]["forward_images"] == 0
    assert warm["extra"]["corruptions"]["cache"] == {"enabled": True, "hits": 4, "misses": 0}
    assert cold["metrics"]["corruptions"] == warm["metrics"]["corruptions"]
    assert cold["summary"] == warm["summary"]
    assert cold["metrics"]["corruptions"]["bootstrap"]["split_sha256"] == cold["dataset"]["split_hashes"]["val"]

    block = cold["metrics"]["corruptions"]
    proto = load_protocol("reo-v2", task="corruptions")
    assert block["protocol"]["hash"] == proto.hash and cold["summary"]["corruptions"]["protocol_hash"] == proto.hash
    assert [(r["type"], r["severity"]) for r in block["conditions"]] == [(t, s) for t in TYPES for s in (1, 5)]
    assert block["clean"]["top1"] == pytest.approx(cold["summary"]["top1_avg"])

    # every figure again from the sidecar, computed independently
    preds = predictions_for_record(cold)
    y = preds.y_true
    clean = preds.preds["knn_s0.125_k20"] == y
    ps, tops = [], []
    for r in block["conditions"]:
        corr = preds.preds[f"c.{r['type']}.{r['severity']}.knn_s0.125_k20"] == y
        assert r["top1"] == pytest.approx(100.0 * corr.mean())
        assert r["drop"] == pytest.approx(100.0 * (clean.mean() - corr.mean()))
        t = r["per_scale"]["0.125"]["mcnemar"]
        assert (t["clean_only"], t["corrupted_only"]) == (int((clean & ~corr).sum()), int((~clean & corr).sum()))
        assert t["p"] == pytest.approx(_exact_mcnemar(t["clean_only"], t["corrupted_only"]), rel=1e-12)
        assert r["ci"][0] <= r["top1"] <= r["ci"][1]
        ps.append(t["p"])
        tops.append(r["top1"])
    holm = _holm(ps)
    assert [r["per_scale"]["0.125"]["mcnemar"]["p_holm"] for r in block["conditions"]] == pytest.approx(holm)
    assert block["mca"] == pytest.approx(np.mean(tops))
    if block["clean"]["top1"] > 0:
        assert block["relative_drop"] == pytest.approx(100 * (block["clean"]["top1"] - block["mca"])
                                                       / block["clean"]["top1"])
    per_type = {t: np.mean([r["top1"] for r in block["conditions"] if r["type"] == t]) for t in TYPES}
    assert block["worst_type"]["type"] == min(TYPES, key=lambda t: (per_type[t], TYPES.index(t)))
    # the heaviest noise changes predictions: the corruption is really applied to the val images
    assert (preds.preds["c.gaussian_noise.5.knn_s0.125_k20"] != preds.preds["knn_s0.125_k20"]).any()

    # without --corruptions: the same protocol hash and clean numbers, served from the same cache, no corruption block
    plain = tmp_path / "plain"
    assert main(KNN + ["--results-dir", str(plain), "--cache-dir", str(cache)]) == 0
    (rec,) = _records(plain)
    assert counted.get("images", 0) == cold_calls
    assert rec["protocol"]["hash"] == cold["protocol"]["hash"] and rec["protocol"] == cold["protocol"]
    assert "corruptions" not in rec["metrics"] and "corruptions" not in rec["summary"]
    assert rec["summary"] == {k: v for k, v in cold["summary"].items() if k != "corruptions"}
    assert rec["predictions"]["keys"] == [k for k in cold["predictions"]["keys"] if not k.startswith("pred__c.")]


def test_sharded_extraction_corrupts_each_image_as_one_process(tmp_path, ucm_mini):
    """Rank 1 of 2 (batch 16: 84 val images, rank 1 takes images 48..83) extracts the corrupted rows of the
    single-process run bit for bit: an image's corruption is seeded by its index in the split, not in the shard."""
    from satbench.data.corruptions import load_corruption_protocol
    from satbench.eval.corruption_eval import CorruptionPlan, corrupted_view
    from satbench.eval.extract import extract_views
    from satbench.eval.knn_protocols import build_scale_entries
    from satbench.models.features import FeatureExtractor
    from satbench.config.protocols import load_protocol
    from satbench.runtime.distributed import DistInfo, shard_bounds

    class Rank1(DistInfo):
        shard: list = []

        def broadcast_object(self, obj, src=0):
            return obj

        def gather_object(self, obj, dst=0):
            self.shard.append(obj)
            return None

        def all_reduce_sum(self, t):
            return t

    model = tiny_model()
    knn = load_protocol("satdino-knn-v1").with_overrides(scales=[0.125], k=[5], k_report=5)
    (entry,) = build_scale_entries(knn, ucm_mini, model)
    proto, settings = load_corruption_protocol("reo-v1")
    plan = CorruptionPlan(proto, settings, ("clouds",), (4,))
    sha = ucm_mini.splits["val"].sha256
    view = corrupted_view(entry.view, plan, "clouds", 4, sha)
    samples = ucm_mini.samples("val")
    ext = FeatureExtractor(model, device="cpu")
    one = extract_views(ext, samples, [view], split_sha256=sha, batch_size=16, num_workers=0, progress=False)
    clean = extract_views(ext, samples, [entry.view], split_sha256=sha, batch_size=16, num_workers=0, progress=False)
    info = Rank1(rank=1, world_size=2, backend="fake")
    assert extract_views(ext, samples, [view], split_sha256=sha, batch_size=16, num_workers=0, progress=False,
                         dist=info) == {}
    lo, hi = shard_bounds(len(samples), 16, 1, 2)
    assert (lo, hi) == (48, 84) and np.array_equal(Rank1.shard[0], one[view.key][lo:hi])
    assert not np.array_equal(one[view.key], clean[entry.view.key])  # clouds at 4 do change the features


def test_cached_linear_and_linear_evaluate_corruptions(counted, tmp_path, ucm_mini):
    import torch

    import satbench

    small = small_scene_copy(tmp_path / "data", ucm_mini)
    common = dict(model="satdino-vit_small-16", weights="random", dataset=str(small), device="cpu", num_workers=0,
                  progress=False, resamples=200, cache_dir=str(tmp_path / "cache"), corruptions=["haze"],
                  severities="3..4")
    rec = satbench.run("cached-linear", results_dir=tmp_path / "cl", epochs=2, val_resize=36, val_crop=32, **common)
    block = rec["metrics"]["corruptions"]
    assert [(r["type"], r["severity"]) for r in block["conditions"]] == [("haze", 3), ("haze", 4)]
    assert block["clean"]["top1"] == pytest.approx(rec["summary"]["top1"]) and block["n"] == 10
    n = counted["images"]
    again = satbench.run("cached-linear", results_dir=tmp_path / "cl", epochs=2, val_resize=36, val_crop=32, **common)
    assert counted["images"] == n and again["metrics"]["corruptions"] == block  # cached, same numbers

    # linear --evaluate: the weights' linear_head on the clean and the corrupted val features
    model = satbench.api.load("x")
    torch.manual_seed(1)
    model.linear_head = {"linear.weight": torch.randn(5, 192) * 0.1, "linear.bias": torch.zeros(5)}
    ev = satbench.run("linear", task_options={"evaluate": True}, results_dir=tmp_path / "lin", val_resize=36, val_crop=32,
                      **{k: v for k, v in common.items() if k not in ("model", "weights")}, model=model)
    block = ev["metrics"]["corruptions"]
    assert block["clean_equals_record_predictions"] is True
    assert block["clean"]["top1"] == pytest.approx(ev["summary"]["top1"])
    assert "pred__c.haze.4.top1" in ev["predictions"]["keys"]


@pytest.mark.parametrize("extra, pattern", [
    (["--corruptions", "gausian_noise"], r"unknown corruption type 'gausian_noise'.*gaussian_noise"),
    (["--corruptions", "jpeg", "--severities", "0"], r"severity must be an integer 1\.\.5, got 0"),
    (["--corruptions", "jpeg", "--severities", "4..2"], r"severities must be integers 1\.\.5 or a range"),
    (["--severities", "1"], r"--severities needs --corruptions"),
    (["--corruptions", "jpeg", "--shots", "2"], r"--corruptions and --train-fraction/--shots cannot be combined"),
    (["--corruptions", "jpeg", "--corruption-protocol", "reo-v9"], r"unknown protocol 'reo-v9'"),
])
def test_bad_corruption_options_are_one_line_before_any_work(counted, tmp_path, capsys, extra, pattern):
    import re

    res = tmp_path / "res"
    code = main(KNN + extra + ["--results-dir", str(res)])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code == 2 and len(err) == 1 and re.search(pattern, err[0]), err
    assert counted.get("images", 0) == 0 and not list(res.glob("*.json"))


def test_corruptions_on_a_task_without_them_is_refused(counted, tmp_path):
    import satbench
    from satbench.errors import SatbenchError

    with pytest.raises(SatbenchError, match=r"--corruptions applies to tasks knn, cached-linear, linear "
                                            r"--evaluate and segmentation, not finetune"):
        satbench.run("finetune", corruptions=["jpeg"], results_dir=tmp_path / "r")
    with pytest.raises(SatbenchError, match=r"add --evaluate"):
        satbench.run("linear", corruptions=["jpeg"], results_dir=tmp_path / "r", weights="random")
