"""cached-linear-v1 (satbench/eval/cached_linear.py): vectorised AdamW heads, hold-out selection, feature cache, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from satbench.models.backbones.satdino import SatDINOViT
from satbench.eval.cache import FeatureCache
from satbench.errors import ProtocolError
from satbench.eval.cached_linear import (CachedLinearSettings, heads_accuracy, run_cached_linear, stratified_holdout,
                                         train_heads)
from satbench.models.features import FeatureExtractor
from satbench.config.protocols import load_protocol
from satbench.models.registry import ModelCard
from satbench.models.weights import LoadedModel, WeightsInfo


pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n=60, d=8, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % c
    x = torch.randn(n, d, generator=g) + 2.0 * F.one_hot(y, d).float()
    return x, y


def test_one_head_equals_torch_adamw_with_per_step_cosine():
    """Independent reference: nn.Linear + torch.optim.AdamW + LambdaLR cosine, same init and batches."""
    x, y = _data()
    lr, wd, epochs, bs, seed = 3e-2, 0.1, 4, 16, 0
    w, b = train_heads(x, y, [lr], [wd], 3, epochs=epochs, batch_size=bs, seed=seed)

    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(8, 3)
    with torch.no_grad():
        lin.weight.copy_(torch.empty(3, 8).normal_(0.0, 0.01, generator=g))
        lin.bias.zero_()
    opt = torch.optim.AdamW(lin.parameters(), lr=lr, weight_decay=wd)
    total = epochs * math.ceil(len(x) / bs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), bs):
            idx = perm[i:i + bs]
            loss = F.cross_entropy(lin(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    assert torch.allclose(w[0], lin.weight, atol=1e-5) and torch.allclose(b[0], lin.bias, atol=1e-5)


def test_grid_heads_are_independent():
    x, y = _data(seed=1)
    lrs, wds = [1e-3, 1e-2, 1e-1], [0.0, 1.0, 0.1]
    w, b = train_heads(x, y, lrs, wds, 3, epochs=3, batch_size=16, seed=2)
    for i, (lr, wd) in enumerate(zip(lrs, wds)):
        wi, bi = train_heads(x, y, [lr], [wd], 3, epochs=3, batch_size=16, seed=2)
        assert torch.allclose(w[i], wi[0], atol=1e-6) and torch.allclose(b[i], bi[0], atol=1e-6)
    acc = heads_accuracy(x, y, w, b)
    ref = [(100.0 * ((x @ w[i].T + b[i]).argmax(1) == y).float().mean()).item() for i in range(3)]
    assert acc.tolist() == pytest.approx(ref)


def test_holdout_is_stratified_and_seeded():
    labels = np.repeat(np.arange(5), 10)
    fit, hold = stratified_holdout(labels, 0.2, seed=3)
    assert len(hold) == 10 and np.bincount(labels[hold]).tolist() == [2] * 5
    assert sorted(np.concatenate([fit, hold]).tolist()) == list(range(50))
    assert np.array_equal(hold, stratified_holdout(labels, 0.2, seed=3)[1])
    assert not np.array_equal(hold, stratified_holdout(labels, 0.2, seed=4)[1])


def test_protocol_validation():
    p = load_protocol("cached-linear-v1")
    s = CachedLinearSettings.from_protocol(p)
    assert len(s.grid()) == len(s.lrs) * len(s.weight_decays) and s.holdout_fraction == 0.2
    assert (s.val_resize, s.val_crop) == (256, 224)
    with pytest.raises(ProtocolError, match="holdout_fraction"):
        CachedLinearSettings.from_protocol(p.with_overrides(holdout_fraction=1.5))
    with pytest.raises(ProtocolError, match="cached-heads"):
        CachedLinearSettings.from_protocol(load_protocol("satdino-linear-v1"))


def test_probe_on_random_backbone_learns_on_ucm_mini_and_reuses_the_cache(ucm_mini, tmp_path):
    torch.manual_seed(0)
    model = SatDINOViT(patch_size=16, embed_dim=192, depth=2, num_heads=3)
    card = ModelCard(name="satdino-tiny-test", family="satdino", patch_size=16, embed_dim=192, depth=2,
                     feature_dim=192, normalization="fmow", arch="vit_tiny")
    ex = FeatureExtractor(LoadedModel(model, card, WeightsInfo("random", kind="random", seed=0)), device="cpu")
    p = load_protocol("cached-linear-v1").with_overrides(val_resize=73, val_crop=64)
    cache = FeatureCache(tmp_path / "cache")
    kw = dict(train_split_sha256=ucm_mini.splits["train"].sha256, val_split_sha256=ucm_mini.splits["val"].sha256,
              cache=cache, num_workers=0, progress=False, seed=0)
    train, val = ucm_mini.samples("train"), ucm_mini.samples("val")
    r1 = run_cached_linear(ex, train, val, 21, p, **kw)
    chance = 100.0 / 21
    assert r1.top1 > 3 * chance, r1.top1  # measured 20.2 % on the 84 val images (chance 4.8 %)
    assert r1.extract["computed_views"] and not r1.extract["cached_views"]
    assert r1.holdout["n_holdout"] == math.ceil(0.2 * len(train)) and len(r1.grid) == 24
    assert r1.selected["holdout_top1"] == max(g["holdout_top1"] for g in r1.grid)
    r2 = run_cached_linear(ex, train, val, 21, p, **kw)
    assert r2.extract["cached_views"] and r2.extract["forward_images"] == 0 and r2.extract["images_decoded"] == 0
    assert (r2.top1, r2.top5, r2.selected) == (r1.top1, r1.top5, r1.selected)


def test_cli_cached_linear_writes_a_leaderboard_record(tmp_path, capsys):
    from satbench.cli.app import main

    proto = yaml.safe_load(open(load_protocol("cached-linear-v1").path))
    proto["params"].update(val_resize=36, val_crop=32, epochs=20)
    path = tmp_path / "cached-linear-v1.yaml"
    path.write_text(yaml.safe_dump(proto))
    rc = main(["run", "--task", "linear", "--protocol", str(path), "--model", "satdino-vit_small-16",
               "--weights", "random", "--no-progress", "--num-workers", "0", "--results-dir", str(tmp_path / "res"),
               "--device", "cpu"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "top-1 (val)" in out and "record:" in out
    recs = list((tmp_path / "res").glob("*.json"))
    assert len(recs) == 1
    rec = json.loads(recs[0].read_text())
    assert rec["task"] == "cached-linear" and rec["model"] == "satdino-vit_small-16"  # handed over by --task linear
    assert set(rec["summary"]) == {"top1", "top5", "ci", "calibration"} and 0 <= rec["summary"]["top1"] <= 100
    assert rec["metrics"]["calibration"]["temperature_scaling"] == {"applied": False,
                                                                   "reason": "not asked for (--temperature-scaling)"}
    assert rec["protocol"]["name"] == "cached-linear-v1" and rec["dataset"]["name"] == "ucm-mini"
    assert rec["metrics"]["selected"]["lr"] in proto["params"]["lrs"]
    assert rec["weights"]["source"] == "random"
    assert rec["extractor"]["input"]["text"].startswith("[0, 1] then fmow mean/std -> [")  # the range it saw
    # --lr makes no sense for a protocol that sweeps it: one clear line, exit 2
    rc = main(["run", "--task", "linear", "--protocol", str(path), "--weights", "random", "--lr", "0.1"])
    assert rc == 2 and "sweeps learning rates" in capsys.readouterr().err


def test_temperature_is_fitted_on_the_train_holdout_only(tmp_path, capsys, monkeypatch, ucm_mini):
    """--temperature-scaling: the fit sees exactly the hold-out rows of train (never a val row); the record keeps T,
    where it was fitted and the scaled errors, recomputable from the sidecar."""
    from satbench.cli.app import main
    from satbench.records.predictions import predictions_for_record
    from satbench.stats import temperature as T
    from satbench.stats.calibration import calibration_errors

    seen = []
    real = T.fit_temperature

    def spy(logits, labels, holdout, *, test_split_sha256):
        seen.append((np.array(logits), np.array(labels), holdout, test_split_sha256))
        return real(logits, labels, holdout, test_split_sha256=test_split_sha256)

    monkeypatch.setattr(T, "fit_temperature", spy)
    proto = yaml.safe_load(open(load_protocol("cached-linear-v1").path))
    proto["params"].update(val_resize=36, val_crop=32, epochs=20)
    path = tmp_path / "cached-linear-v1.yaml"
    path.write_text(yaml.safe_dump(proto))
    res = tmp_path / "res"
    assert main(["run", "--task", "cached-linear", "--protocol", str(path), "--weights", "random", "--no-progress",
                 "--num-workers", "0", "--results-dir", str(res), "--device", "cpu", "--resamples", "300",
                 "--temperature-scaling"]) == 0
    out = capsys.readouterr().out
    (logits, labels, holdout, test_sha), = seen
    train_sha, val_sha = ucm_mini.splits["train"].sha256, ucm_mini.splits["val"].sha256
    y_train = np.array([s.label for s in ucm_mini.samples("train")])
    _, hold = stratified_holdout(y_train, 0.2, 0)
    assert holdout.split == "train" and holdout.split_sha256 == train_sha != val_sha == test_sha
    assert list(holdout.indices) == hold.tolist() and logits.shape == (len(hold), 21)
    assert labels.tolist() == y_train[hold].tolist()
    assert not set(holdout.indices) - set(range(len(y_train)))
    (rec_path,) = res.glob("*.json")
    rec = json.loads(rec_path.read_text())
    cal, ts = rec["summary"]["calibration"], rec["metrics"]["calibration"]["temperature_scaling"]
    assert ts["applied"] and ts["fitted_on"]["split_sha256"] == train_sha and ts["fitted_on"]["n"] == len(hold)
    assert cal["temperature"] == ts["temperature"] > 0 and ts["holdout_nll"] <= ts["holdout_nll_t1"]
    preds = predictions_for_record(rec_path)
    correct = preds.correct("top1")
    assert calibration_errors(preds.conf["top1"], correct)["ece"] == pytest.approx(cal["ece"], abs=1e-9)
    assert calibration_errors(preds.conf["top1.ts"], correct)["ece"] == pytest.approx(cal["scaled"]["ece"], abs=1e-9)
    line = [ln for ln in out.splitlines() if ln.startswith("calibration: ECE ")]
    assert len(line) == 1 and f"temperature-scaled (T = {cal['temperature']:.3g})" in line[0]
    # kNN votes are not logits: no such flag for kNN, and the Python API refuses it before any work
    from satbench import api
    from satbench.errors import SatbenchError

    with pytest.raises(SatbenchError, match="not knn: kNN votes are not logits"):
        api.run("knn", model="satdino-vit_small-16", weights="random", dataset="ucm-mini", temperature_scaling=True)
    with pytest.raises(SystemExit):
        main(["run", "--task", "knn", "--weights", "random", "--temperature-scaling"])
    assert "unrecognized arguments: --temperature-scaling" in capsys.readouterr().err
