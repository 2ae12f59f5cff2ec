"""The features guard in segmentation: the backbone's patch features on the real fixture val tile are checked before
the decoder trains; zeroed weights fail in one line with nothing trained or recorded, --allow-collapsed-features
records them marked, random init passes with the check in the record. Tiny model (vit_tiny/16), 64 px windows."""

from __future__ import annotations

import json

import pytest
import torch
from support.seg import CARD, FIX, SMALL

pytest.importorskip("mmseg")

pytestmark = pytest.mark.usefixtures("one_thread_module")


def _zeroed_weights(path):
    """Every tensor of the card's SatDINO ViT set to 0 (weights that "loaded" but hold nothing)."""
    from satbench.models.weights import load_model
    from satbench.seg.backbone import resolve_card

    loaded = load_model(resolve_card(CARD), "random", seed=0)
    torch.save({k: torch.zeros_like(v) for k, v in loaded.model.state_dict().items()}, path)
    return str(path)


def _argv(tmp_path, name, weights, *more):
    return ["run", "--task", "segmentation", "--model", CARD, "--weights", weights, "--dataset",
            str(FIX / "potsdam"), "--crop", "224", "--seg-batch", "2", "--num-workers", "0", "--iters", "1",
            "--work-dir", str(tmp_path / name), "--results-dir", str(tmp_path / "res"), "--no-progress",
            "--seg-cfg-options", *SMALL, *more]


def _records(tmp_path):
    return [json.loads(p.read_text()) for p in sorted((tmp_path / "res").glob("*.json"))]


def test_zeroed_backbone_fails_before_training_and_allowed_collapse_is_recorded(tmp_path, capsys):
    from satbench.cli.app import main

    zero = _zeroed_weights(tmp_path / "zero.pth")
    assert main(_argv(tmp_path, "zero", zero)) == 2
    lines = [ln for ln in capsys.readouterr().err.strip().splitlines()
             if ln.strip() and not ln.startswith("satbench: note:")]
    assert len(lines) == 1 and lines[0].startswith("satbench: error:"), lines
    assert "on potsdam, backbone patch features of the first 1 val tiles (block 11): the features have collapsed: " \
           "192 of 192 dimensions" in lines[0] and "across the 16 patches of 1 val tiles" in lines[0]
    assert "--allow-collapsed-features records it" in lines[0]
    assert _records(tmp_path) == [] and not list((tmp_path / "zero").glob("*.pth"))  # nothing trained or recorded
    assert main(_argv(tmp_path, "zero2", zero, "--allow-collapsed-features")) == 0
    out = capsys.readouterr().out
    assert "WARNING: collapsed features recorded (--allow-collapsed-features)" in out
    (rec,) = _records(tmp_path)
    f = rec["features"]
    assert f["collapsed"] is True and f["allowed_by"] == "--allow-collapsed-features"
    (view,) = f["views"].values()
    assert view["flat_dims"] == 192 and view["n"] == 16 and view["dims"] == 192
    assert f["sample"]["tiles"] == 1 and f["sample"]["window"] == [64, 64] and f["sample"]["block"] == 11


def test_random_init_passes_and_the_check_is_in_the_record(tmp_path):
    from satbench.cli.app import main
    from satbench.eval.feature_guard import FLAT_DIM_REL_STD

    assert main(_argv(tmp_path, "rand", "random")) == 0
    (rec,) = _records(tmp_path)
    f = rec["features"]
    assert f["status"] == "ok" and f["collapsed"] is False and "allowed_by" not in f
    (view,) = f["views"].values()
    assert view["n"] == 16 and view["flat_dims"] == 0 and view["min_rel_std"] > 10 * FLAT_DIM_REL_STD
    assert len(view["fingerprint"]) == 64 and f["check"]["flat_dim_rel_std"] == FLAT_DIM_REL_STD
    assert rec["protocol"]["name"] == "upernet-v1"
