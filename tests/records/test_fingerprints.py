"""Identical features under different weights (satbench/records/fingerprints.py): found from records alone, by the
run that writes the second record, `satbench leaderboard` and `satbench results ls`."""

from __future__ import annotations

import dataclasses
import json

import torch

from satbench.cli.app import main
from satbench.models.backbones.satdino import SatDINOViT
from satbench.models.registry import get_card
from satbench.models.weights import LoadedModel, WeightsInfo
from satbench.records.fingerprints import clash_lines, clashes, weights_identity

FP = "ab" * 32


def _rec(rid, model="m", fp=FP, **weights):
    return {"id": rid, "model": model, "weights": weights, "_path": f"/r/{rid}.json",
            "features": {"views": {"v32": {"fingerprint": fp}}}}


def test_a_shared_fingerprint_is_flagged_only_across_weights_identities():
    a, b = _rec("a", tensors_sha256="1" * 64), _rec("b", model="other", tensors_sha256="2" * 64)
    (line,) = clash_lines(clashes([a, b]))
    assert line.startswith("identical features under different weights: m (weights 111111111111) in /r/a.json and "
                           "other (weights 222222222222) in /r/b.json (view v32, fingerprint abababababab)")
    same = _rec("c", tensors_sha256="1" * 64)  # the same weights run twice: nothing to say
    assert clashes([a, same]) == []
    assert clashes([a, _rec("d", fp="cd" * 32, tensors_sha256="2" * 64)]) == []
    r0, r1 = _rec("r0", source="random", seed=0), _rec("r1", source="random", seed=1)
    assert weights_identity(r0) == "random:m:seed0" and len(clashes([r0, r1])) == 1
    assert clash_lines(clashes([a, b, r0]), only_involving=[r0]) != [] and clash_lines(clashes([a, b]), [r0]) == []
    assert clashes([a, {**b, "features": {"views": {"v32": {"fingerprint": "not a sha"}}}}]) == []  # untrusted input


def _tiny(seed: int, tensors: str) -> LoadedModel:
    card = dataclasses.replace(get_card("satdino-vit_small-16"), name="test-satdino-tiny-d2", arch="vit_tiny",
                               embed_dim=192, feature_dim=192, depth=2, num_heads=3, weights={})
    torch.manual_seed(seed)
    return LoadedModel(SatDINOViT(embed_dim=192, depth=2, num_heads=3).eval(), card,
                       WeightsInfo(source="file", path=f"/w/{tensors}.pth", sha256=tensors * 64, kind="pretrain",
                                   tensors_sha256=tensors * 64))


def test_two_runs_of_one_init_under_two_weights_identities_are_flagged(monkeypatch, tmp_path, capsys):
    import satbench.api as api

    res = tmp_path / "res"
    knn = ["run", "--task", "knn", "--scales", "0.125", "--k", "5", "--no-progress", "--num-workers", "0",
           "--results-dir", str(res)]
    monkeypatch.setattr(api, "load", lambda *a, **k: _tiny(0, "a"))
    assert main(knn) == 0
    assert "identical features" not in capsys.readouterr().err
    monkeypatch.setattr(api, "load", lambda *a, **k: _tiny(1, "b"))  # other weights, other features
    assert main(knn) == 0
    assert "identical features" not in capsys.readouterr().err
    monkeypatch.setattr(api, "load", lambda *a, **k: _tiny(0, "c"))  # "new" weights that compute seed 0's features
    assert main(knn) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "identical features" in ln]
    assert len(lines) == 1 and lines[0].startswith("satbench: warning: identical features under different weights: ")
    assert "(weights aaaaaaaaaaaa)" in lines[0] and "(weights cccccccccccc)" in lines[0] and "bbbb" not in lines[0]
    recs = [json.loads(p.read_text()) for p in sorted(res.glob("*.json"))]
    assert len({tuple(r["features"]["views"].values())[0]["fingerprint"] for r in recs}) == 2
    for argv in (["leaderboard", "--results-dir", str(res), "--task", "knn"], ["results", "ls", "--results-dir", str(res)]):
        assert main(argv) == 0
        err = capsys.readouterr().err
        assert sum("identical features under different weights" in ln for ln in err.splitlines()) == 1, err
