"""``torchgeo:<builder>`` backbones (satbench/models/backbones/torchgeo_zoo.py).

The optional ``torchgeo`` extra is in the ``test`` extra, so CI runs the tests marked ``needs_torchgeo``; in a venv
without it they skip with that reason, and the refusals and the missing-extra line still run.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import time
from functools import partial

import numpy as np
import pytest
import torch
from torch import nn

from satbench.errors import SatbenchError, UnknownNameError, WeightsError
from satbench.models.backbones import torchgeo_zoo as tz

needs_torchgeo = pytest.mark.skipif(importlib.util.find_spec("torchgeo") is None,
                                    reason="the optional 'torchgeo' extra is not installed "
                                           "(pip install 'satbench[torchgeo]')")


def _load(name: str, weights: str | None = "random", seed: int = 0, **options):
    from satbench.api import load

    return load(f"torchgeo:{name}", weights, seed=seed, options=options)


# --------------------------------------------------------------------------------------------------------------------
# Without torchgeo
# --------------------------------------------------------------------------------------------------------------------
def test_a_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchgeo", None)  # import torchgeo -> ImportError
    monkeypatch.setitem(sys.modules, "torchgeo.models", None)
    tz.card_for.cache_clear()
    try:
        with pytest.raises(SatbenchError, match=r"needs the optional 'torchgeo' extra: pip install "
                                                r"'satbench\[torchgeo\]' \(torchgeo==0\.8\.1") as exc:
            _load("dofa_base_patch16_224")
    finally:
        tz.card_for.cache_clear()
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("name,bands", [
    ("croma_base", "12 Sentinel-2 bands (Sentinel-2 B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B11, B12)"),
    ("croma_large", "12 Sentinel-2 bands"),
    ("vit_small_patch14_dinov2", "SoftCon's: 13 Sentinel-2 bands"),
    ("vit_base_patch14_dinov2", "SoftCon's: 13 Sentinel-2 bands"),
])
def test_models_needing_bands_rgb_lacks_are_refused_naming_the_bands(name, bands):
    with pytest.raises(SatbenchError, match="needs bands that RGB images lack") as exc:
        _load(name)
    assert bands in str(exc.value) and "\n" not in str(exc.value)


def test_an_unknown_builder_lists_the_zoo():
    with pytest.raises(UnknownNameError, match=r"not a torchgeo ViT satbench runs on RGB.*dofa_base_patch16_224"):
        _load("dofa_base_patch16")


# --------------------------------------------------------------------------------------------------------------------
# With torchgeo
# --------------------------------------------------------------------------------------------------------------------
def _plain(loaded, x: torch.Tensor) -> torch.Tensor:
    """torchgeo's own forward of the wrapped model, called as torchgeo documents it, RGB metadata as recorded."""
    m, kind = loaded.model.model, loaded.model.spec.kind
    if kind == "dofa":
        return m(x, list(tz.RGB_UM))
    if kind == "copernicusfm":
        meta = torch.full((x.shape[0], 4), float("nan"))
        return m(x, meta, wavelengths=list(tz.RGB_NM), bandwidths=list(tz.RGB_BW_NM), input_mode="spectral")
    if kind == "panopticon":
        return m({"imgs": x, "chn_ids": torch.tensor(tz.RGB_NM).repeat(x.shape[0], 1)})
    return m(x)


@needs_torchgeo
@pytest.mark.parametrize("name", list(tz.ZOO))
def test_each_model_builds_and_gives_torchgeos_own_feature(name):
    loaded = _load(name)
    spec = tz.ZOO[name]
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got, ref, out = loaded.model(x), _plain(loaded, x), loaded.model.forward_features(x, layers=(0,))
    assert got.shape == (2, spec.embed_dim) and loaded.card.feature == spec.default_pool
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5)
    grid = 224 // spec.patch_size
    assert out.patches.shape == (2, grid * grid, spec.embed_dim) and out.layers[0].shape == out.patches.shape
    opts = loaded.model.options
    assert (opts["family"], opts["torchgeo_model"], opts["tokens"], opts["pool"]) == ("torchgeo", name, "cls+patches",
                                                                                      spec.default_pool)
    assert opts["spectral"] == spec.spectral and opts["torchgeo"] == "0.8.1"


@needs_torchgeo
@pytest.mark.parametrize("name,size", [("dofa_small_patch16_224", 64), ("panopticon_vitb14", 56)])
def test_off_the_built_grid_positions_are_torchgeos_resize(name, size):
    """At a kNN size the wrapper equals torchgeo's model built at that size with its pos_embed resized by torchgeo's
    resize_abs_pos_embed (what torchgeo's Panopticon builder does to its 518-px table)."""
    import torchgeo.models as tgm
    from torchgeo.models.copernicusfm import resize_abs_pos_embed

    loaded = _load(name)
    spec = tz.ZOO[name]
    built, grid = 224 // spec.patch_size, size // spec.patch_size
    sd = loaded.model.model.state_dict()
    kwargs = {"num_classes": 0} if spec.kind == "dofa" else {}
    ref = getattr(tgm, name)(img_size=size, **kwargs).eval()
    sd["model.pos_embed" if spec.kind == "panopticon" else "pos_embed"] = resize_abs_pos_embed(
        sd["model.pos_embed" if spec.kind == "panopticon" else "pos_embed"], grid, built)
    ref.load_state_dict(sd, strict=True)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = loaded.model(x)
        want = (ref(x, list(tz.RGB_UM)) if spec.kind == "dofa"
                else ref({"imgs": x, "chn_ids": torch.tensor(tz.RGB_NM).repeat(2, 1)}))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@needs_torchgeo
def test_a_released_layout_file_loads_strictly_and_an_odd_key_is_refused(tmp_path):
    """DOFA's released files have no fc_norm (torchgeo leaves it at init) and may carry head keys; anything else that
    does not fit is a one-line refusal naming the key."""
    from safetensors.torch import save_file

    src = _load("dofa_small_patch16_224", seed=3)
    sd = {k[len("model."):]: v.clone() for k, v in src.model.state_dict().items() if not k.startswith("model.fc_norm")}
    sd["head.weight"], sd["head.bias"] = torch.zeros(45, 384), torch.zeros(45)
    save_file(sd, str(tmp_path / "dofa.safetensors"))
    got = _load("dofa_small_patch16_224", str(tmp_path / "dofa.safetensors"))
    extras = got.weights.extras
    assert extras["filled_at_init"] == ["fc_norm.weight", "fc_norm.bias"]
    assert extras["dropped_keys"] == ["head.bias", "head.weight"]
    for k, v in sd.items():
        if not k.startswith("head."):
            assert torch.equal(got.model.state_dict()[f"model.{k}"], v), k
    sd["decoder_embed.weight"] = torch.zeros(4, 4)
    save_file(sd, str(tmp_path / "odd.safetensors"))
    with pytest.raises(WeightsError, match="decoder_embed.weight"):
        _load("dofa_small_patch16_224", str(tmp_path / "odd.safetensors"))


@needs_torchgeo
def test_offline_without_the_file_is_one_line_saying_where_to_place_it():
    t0 = time.perf_counter()
    with pytest.raises(WeightsError) as exc:
        _load("dofa_base_patch16_224", None)
    msg = str(exc.value)
    assert time.perf_counter() - t0 < 5 and "\n" not in msg
    assert "place the weight file at" in msg and msg.split("place the weight file at ")[1].split(",")[0].endswith(
        "dofa_base_patch16_224-a0275954.pth")
    assert "hf.co/torchgeo/dofa" in tz.card_for("torchgeo:dofa_base_patch16_224").weights["pretrain"]["url"]


@needs_torchgeo
def test_knn_end_to_end_on_the_bundled_images_records_the_model(tmp_path):
    import json

    import satbench

    rec = satbench.run("knn", model="torchgeo:dofa_small_patch16_224", weights="random", scales=[0.25, 0.125],
                       k=[10, 20], results_dir=tmp_path / "res", num_workers=0, batch_size=128)
    back = json.loads(rec.path.read_text())
    assert back["model"] == "torchgeo:dofa_small_patch16_224"
    assert [e["key"] for e in back["metrics"]["per_scale"]] == ["256->64(64)", "256->32(32)"]
    assert 0 <= back["summary"]["top1_avg"] <= 100
    opts = back["extractor"]["model_options"]
    assert (opts["family"], opts["pool"], opts["tokens"]) == ("torchgeo", "avg", "cls+patches")
    assert opts["spectral"]["wavelengths_um"] == [0.665, 0.56, 0.49] and "resize_abs_pos_embed" in opts["positions"]


# --------------------------------------------------------------------------------------------------------------------
# Cross-implementation: torchgeo's Scale-MAE against satbench's own, the same numpy-drawn weights
# --------------------------------------------------------------------------------------------------------------------
def _numpy_weights(keys_shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    out = {}
    for k, shape in sorted(keys_shapes.items()):
        a = rng.standard_normal(shape).astype(np.float32) * 0.05
        if k.endswith(".weight") and len(shape) == 1:  # layer norms around 1
            a += 1.0
        out[k] = torch.from_numpy(a)
    return out


@needs_torchgeo
@pytest.mark.parametrize("size,res", [(224, 1.0), (64, 1.0), (64, 224 / 64)])
def test_torchgeo_scalemae_equals_satbenchs_scalemae(size, res):
    """Same keys (both are MAE/timm names, no mapping), same numpy-drawn weights: features agree within 1e-4 at 224 px
    and at a kNN scale, with Scale-MAE's GSD ratio 1.0 and 224/size (the kNN ``224/size`` input_res policy)."""
    from torchgeo.models import ScaleMAE

    from satbench.models.backbones.scalemae import ScaleMAEViT

    dims = dict(patch_size=16, embed_dim=64, depth=2, num_heads=4)
    ours = ScaleMAEViT(img_size=224, pool="cls", **dims).eval()
    theirs = ScaleMAE(mlp_ratio=4, qkv_bias=True, norm_layer=partial(nn.LayerNorm, eps=1e-6), num_classes=0,
                      **dims).eval()
    assert set(ours.state_dict()) == set(theirs.state_dict()), "key names differ: " + ", ".join(
        sorted(set(ours.state_dict()) ^ set(theirs.state_dict())))
    w = _numpy_weights({k: tuple(v.shape) for k, v in ours.state_dict().items()})
    ours.load_state_dict(w, strict=True)
    theirs.load_state_dict(w, strict=True)
    spec = dataclasses.replace(tz.ZOO["scalemae_large_patch16"], **{k: v for k, v in dims.items()})
    theirs.patch_embed.strict_img_size = False
    wrapped = tz.TorchGeoBackbone(theirs, spec, "cls", 1.0).eval()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a = ours.forward_features(x, input_res=res)
        b = wrapped.forward_features(x, input_res=res)
        pe_ours = ours.patch_embed.proj(x).flatten(2).transpose(1, 2)
        pe_theirs = theirs.patch_embed(x)
    torch.testing.assert_close(pe_theirs, pe_ours, rtol=0, atol=1e-5, msg="patch embedding differs")
    torch.testing.assert_close(b.cls, a.cls, rtol=0, atol=1e-4, msg=f"CLS feature differs at {size} px, res {res}")
    torch.testing.assert_close(b.patches, a.patches, rtol=0, atol=1e-4, msg="patch tokens differ")
