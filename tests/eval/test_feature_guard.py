"""The features guard (satbench/eval/feature_guard.py): random-init ViTs pass on the bundled images, NaN features and
collapsed ones fail in one line in kNN, cached-linear and linear alike, and --allow-collapsed-features records a
collapse, marked in the record and the leaderboard."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from satbench.cli.app import main
from satbench.config.protocols import load_protocol
from satbench.data.images import read_rgb
from satbench.data.transforms import eval_transform
from satbench.eval.feature_guard import (
    COLLAPSED_DIM_FRACTION, FLAT_DIM_REL_STD, FeatureError, FeatureMoments, array_stats, check_arrays, fingerprint
)
from satbench.models.backbones.satdino import SatDINOViT
from satbench.models.features import FeatureExtractor
from satbench.models.registry import get_card
from satbench.models.weights import LoadedModel, WeightsInfo, load_model
from support.paths import UCM_MINI

pytestmark = pytest.mark.usefixtures("one_thread")


def _val_images(ds, size: int = 64) -> torch.Tensor:
    tf = eval_transform(round(size * 256 / 224), size)
    return torch.stack([tf(read_rgb(s.path)) for s in ds.samples("val")])


@pytest.mark.parametrize("name", ["satdino-vit_small-16", "timm:vit_small_patch16_224"])
def test_random_init_vits_pass_and_pixels_divided_by_255_twice_are_caught(name, ucm_mini):
    imgs = _val_images(ucm_mini)  # the 84 real val images of ucm-mini at the 64-px kNN scale
    ex = FeatureExtractor(load_model(get_card(name), "random", seed=0), device="cpu")
    ok = array_stats(ex(imgs).cls.numpy())
    assert ok["collapsed"] is False and ok["flat_dims"] == 0 and ok["n"] == 84 and ok["dims"] == 384
    assert ok["min_rel_std"] > 10 * FLAT_DIM_REL_STD  # measured 0.35-0.42: far from the threshold
    twice = array_stats(ex(imgs / 255).cls.numpy())  # an input scaled by 1/255 a second time
    assert twice["collapsed"] is True and twice["flat_dims"] > COLLAPSED_DIM_FRACTION * 384
    assert twice["median_rel_std"] < FLAT_DIM_REL_STD / 5


def test_moments_summed_over_shards_equal_the_whole_array():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(50, 8)) + 3.0).astype(np.float32)
    x[:, 2] = 7.0  # one flat dimension
    whole = array_stats(x)
    parts = [FeatureMoments(), FeatureMoments()]
    parts[0].add(torch.from_numpy(x[:20]))
    parts[1].add(x[20:])
    summed = FeatureMoments.from_tensor(parts[0].as_tensor(8) + parts[1].as_tensor(8))
    assert summed.stats() == whole and whole["flat_dims"] == 1 and whole["collapsed"] is False
    x[3, 0] = np.nan
    assert array_stats(x)["nonfinite_images"] == 1
    assert array_stats(x[:1])["collapsed"] is None  # one image: nothing to judge


def test_check_arrays_fails_on_nan_in_any_split_and_fingerprints_identical_features_alike():
    rng = np.random.default_rng(1)
    val, train = rng.normal(size=(20, 16)).astype(np.float32), rng.normal(size=(30, 16)).astype(np.float32)
    sec = check_arrays({"v": val}, "m", split_sha256="s", views={"v": {"crop": 32}}, others={"train": train})
    assert sec["status"] == "ok" and sec["collapsed"] is False and sec["check"]["flat_dim_rel_std"] == FLAT_DIM_REL_STD
    assert sec["views"]["v"]["fingerprint"] == fingerprint(val.copy(), split_sha256="s", view={"crop": 32})
    assert fingerprint(val + 1e-3, split_sha256="s", view={"crop": 32}) != sec["views"]["v"]["fingerprint"]
    assert fingerprint(val, split_sha256="other", view={"crop": 32}) != sec["views"]["v"]["fingerprint"]
    bad = train.copy()
    bad[4, 3] = np.inf
    with pytest.raises(FeatureError, match=r"^m, train: 1 of 30 images have NaN or infinite features"):
        check_arrays({"v": val}, "m", split_sha256="s", views={}, others={"train": bad})
    flat = np.tile(val[:1], (20, 1))
    with pytest.raises(FeatureError, match=r"collapsed: 16 of 16 dimensions .*--allow-collapsed-features"):
        check_arrays({"v": flat}, "m", split_sha256="s", views={})
    allowed = check_arrays({"v": flat}, "m", split_sha256="s", views={}, allow_collapsed=True)
    assert allowed["collapsed"] is True and allowed["allowed_by"] == "--allow-collapsed-features"


def _tiny(broken: str = "") -> LoadedModel:
    """A 2-block SatDINO (random init); ``zero``: its patch embedding zeroed (every image gives the same tokens, as
    weights that did not load), ``nan``: a NaN in its final norm."""
    card = dataclasses.replace(get_card("satdino-vit_small-16"), name="test-satdino-tiny-d2", arch="vit_tiny",
                               embed_dim=192, feature_dim=192, depth=2, num_heads=3, weights={})
    torch.manual_seed(0)
    model = SatDINOViT(embed_dim=192, depth=2, num_heads=3).eval()
    with torch.no_grad():
        if broken == "zero":
            model.patch_embed.proj.weight.zero_()
        elif broken == "nan":
            model.norm.weight[5] = float("nan")
    return LoadedModel(model, card, WeightsInfo(source="random", kind="random", seed=0))


def _records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


def _one_line(capsys, code, pattern):
    import re

    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and not ln.startswith("satbench: note:")]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("satbench: error:"), err
    assert re.search(pattern, lines[0]), lines[0]


KNN = ["run", "--task", "knn", "--weights", "random", "--scales", "0.125", "--k", "5", "--no-progress",
       "--num-workers", "0", "--no-cache"]


def test_knn_fails_on_nan_and_collapsed_features_and_records_an_allowed_collapse(monkeypatch, tmp_path, capsys):
    import satbench.api as api

    res = tmp_path / "res"
    for broken, pattern in (("nan", r"test-satdino-tiny-d2 on ucm-mini, train features, view .*: 336 of 336 images have NaN"),
                            ("zero", r"on ucm-mini, val features, view .*: the features have collapsed: 192 of 192 dimensions")):
        monkeypatch.setattr(api, "load", lambda *a, b=broken, **k: _tiny(b))
        _one_line(capsys, main(KNN + ["--results-dir", str(res)]), pattern)
        assert _records(res) == []  # nothing recorded
    assert main(KNN + ["--results-dir", str(res), "--allow-collapsed-features"]) == 0
    out = capsys.readouterr()
    assert "WARNING: collapsed features recorded (--allow-collapsed-features)" in out.out
    assert "collapsed features at" in out.err
    (rec,) = _records(res)
    assert rec["features"]["collapsed"] is True and rec["features"]["allowed_by"] == "--allow-collapsed-features"
    (view,) = rec["features"]["views"].values()
    assert view["flat_dims"] == 192 and view["n"] == 84
    assert main(["leaderboard", "--results-dir", str(res), "--task", "knn"]) == 0
    assert "COLLAPSED FEATURES" in capsys.readouterr().out
    monkeypatch.setattr(api, "load", lambda *a, **k: _tiny())  # a healthy random init: recorded as ok
    assert main(KNN + ["--results-dir", str(tmp_path / "ok")]) == 0
    (ok,) = _records(tmp_path / "ok")
    assert ok["features"]["status"] == "ok" and ok["features"]["collapsed"] is False
    assert len(ok["features"]["views"][next(iter(ok["features"]["views"]))]["fingerprint"]) == 64


def _small_protocol(tmp_path: Path, name: str, **params) -> str:
    proto = yaml.safe_load(open(load_protocol(name).path))
    proto["params"].update(params)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(proto))
    return str(path)


@pytest.mark.parametrize("task,protocol,params", [
    ("cached-linear", "cached-linear-v1", dict(val_resize=36, val_crop=32, epochs=2)),
    ("linear", "satdino-linear-v1", dict(train_crop=32, val_resize=36, val_crop=32, batch_size=64, epochs=1)),
])
def test_linear_probes_fail_on_collapsed_features_the_same_way(task, protocol, params, monkeypatch, tmp_path, capsys):
    import satbench.api as api

    monkeypatch.setattr(api, "load", lambda *a, **k: _tiny("zero"))
    res = tmp_path / "res"
    base = ["run", "--task", task, "--protocol", _small_protocol(tmp_path, protocol, **params), "--weights", "random",
            "--no-progress", "--num-workers", "0", "--device", "cpu", "--results-dir", str(res)]
    if task == "linear":
        base += ["--output-dir", str(tmp_path / "out")]
    _one_line(capsys, main(base), r"val.*: the features have collapsed: 192 of 192 dimensions .* "
                                  r"\(--allow-collapsed-features records it, marked\)")
    assert _records(res) == []
    if task == "linear":
        base[-1] = str(tmp_path / "out2")
    assert main(base + ["--allow-collapsed-features"]) == 0
    (rec,) = _records(res)
    assert rec["features"]["collapsed"] is True and rec["features"]["views"]["r36c32"]["flat_dims"] == 192


@pytest.mark.slow
def test_the_readme_main_job_passes_the_guard_at_every_scale(tmp_path, capsys):
    """`satbench run --task knn --weights random` (SatDINO ViT-S/16, 4 scales, bundled ucm-mini) is never refused."""
    res = tmp_path / "res"
    assert main(["run", "--task", "knn", "--weights", "random", "--no-progress", "--num-workers", "0",
                 "--results-dir", str(res)]) == 0
    (rec,) = _records(res)
    views = rec["features"]["views"]
    assert rec["features"]["status"] == "ok" and len(views) == 4
    assert all(v["flat_dims"] == 0 and v["min_rel_std"] > 10 * FLAT_DIM_REL_STD for v in views.values()), views


UCM_VAL = UCM_MINI / "val.txt"


def test_extract_fails_on_nan_and_collapsed_features_and_writes_an_allowed_collapse_marked(monkeypatch, tmp_path,
                                                                                            capsys):
    """`satbench extract` on the 84 bundled val images: the same guard and flag as the tasks, nothing written on a
    failure, the check in the sidecar."""
    import satbench.api as api

    out = tmp_path / "f.npy"
    argv = ["extract", "--weights", "random", "--images", str(UCM_VAL), "--size", "32", "--output", str(out),
            "--no-progress", "--device", "cpu"]
    for broken, pattern in (("nan", r"test-satdino-tiny-d2, features of .*val\.txt at 32 px: 84 of 84 images have NaN"),
                            ("zero", r"features of .*val\.txt at 32 px: the features have collapsed: 192 of 192 "
                                     r"dimensions .*\(--allow-collapsed-features records it, marked\)")):
        monkeypatch.setattr(api, "load", lambda *a, b=broken, **k: _tiny(b))
        _one_line(capsys, main(argv), pattern)
        assert not out.exists() and not out.with_suffix(".json").exists()
    monkeypatch.setattr(api, "load", lambda *a, **k: _tiny("nan"))  # NaN: no option allows it
    _one_line(capsys, main(argv + ["--allow-collapsed-features"]), r"84 of 84 images have NaN")
    monkeypatch.setattr(api, "load", lambda *a, **k: _tiny("zero"))
    assert main(argv + ["--allow-collapsed-features"]) == 0
    assert "WARNING: collapsed features recorded (--allow-collapsed-features)" in capsys.readouterr().out
    side = json.loads(out.with_suffix(".json").read_text())
    check = side["features_check"]
    assert check["collapsed"] is True and check["allowed_by"] == "--allow-collapsed-features"
    assert check["views"]["32"]["flat_dims"] == 192 and check["views"]["32"]["n"] == 84
    monkeypatch.setattr(api, "load", lambda *a, **k: _tiny())  # a healthy random init: written, status ok
    assert main(argv) == 0
    ok = json.loads(out.with_suffix(".json").read_text())["features_check"]
    assert ok["status"] == "ok" and ok["collapsed"] is False and ok["views"]["32"]["flat_dims"] == 0
    assert "allowed_by" not in ok and len(ok["views"]["32"]["fingerprint"]) == 64
    assert np.load(out).shape == (84, 192)
