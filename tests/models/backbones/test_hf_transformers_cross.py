"""Cross-implementation checks: the same numpy-drawn weights in timm's and transformers' DINOv2 (with and without
registers) and DINOv3 (timm's Eva with RoPE), each loaded through satbench's own family (``timm:`` and
``hf-transformers:``), give the same features.

The key mappings below are the whole of what connects the two libraries; a key left out or mis-mapped is a strict
load error naming it, a wrong tensor layout shows as a feature difference. Where the libraries differ by design the
test names the layer: off the native grid, timm resamples DINOv2's absolute position embeddings with
``antialias=True``, transformers' ``Dinov2Model`` with ``antialias=False`` (its ``Dinov2WithRegistersModel`` with
``antialias=True``, as timm; all bicubic, size-based). So at a kNN scale the registers pair agrees, and the plain
pair agrees once timm's resampling is made the same as transformers' (checked here); satbench records each
library's own behaviour (``model_options.positions``).
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

pytest.importorskip("transformers", reason="the optional 'transformers' extra is not installed")

from support.builders import IMAGENET_PREPROCESSOR, numpy_weights  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

DEPTH = 2
ATOL = 1e-4


def _timm(name: str, seed: int, folder, monkeypatch):
    """``timm:<name>`` loaded by satbench from a safetensors file of numpy-drawn weights, at ``DEPTH`` blocks (timm's
    ``create_model`` is given ``depth=DEPTH`` while satbench builds it)."""
    import timm

    from satbench.api import load

    plain = timm.create_model
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: plain(*a, **{**k, "depth": DEPTH, "img_size": 224}))
    sd = numpy_weights(plain(name, pretrained=False, num_classes=0, dynamic_img_size=True, depth=DEPTH,
                             img_size=224).state_dict(), seed)
    folder.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "timm.safetensors"))
    loaded = load(f"timm:{name}", str(folder / "timm.safetensors"))
    monkeypatch.setattr(timm, "create_model", plain)
    return loaded.model, sd


def dinov2_timm_to_hf(sd: dict[str, torch.Tensor], dim: int, registers: bool, seed: int) -> dict[str, torch.Tensor]:
    """timm DINOv2 keys -> transformers Dinov2Model / Dinov2WithRegistersModel checkpoint keys."""
    out = {"embeddings.cls_token": sd["cls_token"],
           "embeddings.mask_token": torch.zeros(1, dim),
           "embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
           "embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
           "layernorm.weight": sd["norm.weight"], "layernorm.bias": sd["norm.bias"]}
    if registers:  # timm's reg4 model adds no position to CLS (no_embed_class); transformers' CLS position is 0 then
        out["embeddings.register_tokens"] = sd["reg_token"]
        out["embeddings.position_embeddings"] = torch.cat([torch.zeros(1, 1, dim), sd["pos_embed"]], dim=1)
    else:
        out["embeddings.position_embeddings"] = sd["pos_embed"]
    for i in range(DEPTH):
        t, h = f"blocks.{i}.", f"encoder.layer.{i}."
        q, k, v = sd[t + "attn.qkv.weight"].chunk(3)
        qb, kb, vb = sd[t + "attn.qkv.bias"].chunk(3)
        out.update({
            h + "norm1.weight": sd[t + "norm1.weight"], h + "norm1.bias": sd[t + "norm1.bias"],
            h + "attention.attention.query.weight": q, h + "attention.attention.query.bias": qb,
            h + "attention.attention.key.weight": k, h + "attention.attention.key.bias": kb,
            h + "attention.attention.value.weight": v, h + "attention.attention.value.bias": vb,
            h + "attention.output.dense.weight": sd[t + "attn.proj.weight"],
            h + "attention.output.dense.bias": sd[t + "attn.proj.bias"],
            h + "layer_scale1.lambda1": sd[t + "ls1.gamma"], h + "layer_scale2.lambda1": sd[t + "ls2.gamma"],
            h + "norm2.weight": sd[t + "norm2.weight"], h + "norm2.bias": sd[t + "norm2.bias"],
            h + "mlp.fc1.weight": sd[t + "mlp.fc1.weight"], h + "mlp.fc1.bias": sd[t + "mlp.fc1.bias"],
            h + "mlp.fc2.weight": sd[t + "mlp.fc2.weight"], h + "mlp.fc2.bias": sd[t + "mlp.fc2.bias"],
        })
    return out


def dinov3_timm_to_hf(sd: dict[str, torch.Tensor], dim: int) -> dict[str, torch.Tensor]:
    """timm DINOv3 (Eva) keys -> transformers DINOv3ViTModel checkpoint keys."""
    out = {"embeddings.cls_token": sd["cls_token"], "embeddings.register_tokens": sd["reg_token"],
           "embeddings.mask_token": torch.zeros(1, 1, dim),
           "embeddings.patch_embeddings.weight": sd["patch_embed.proj.weight"],
           "embeddings.patch_embeddings.bias": sd["patch_embed.proj.bias"],
           "norm.weight": sd["norm.weight"], "norm.bias": sd["norm.bias"]}
    for i in range(DEPTH):
        t, h = f"blocks.{i}.", f"layer.{i}."
        q, k, v = sd[t + "attn.qkv.weight"].chunk(3)
        out.update({
            h + "norm1.weight": sd[t + "norm1.weight"], h + "norm1.bias": sd[t + "norm1.bias"],
            h + "attention.q_proj.weight": q, h + "attention.k_proj.weight": k, h + "attention.v_proj.weight": v,
            h + "attention.o_proj.weight": sd[t + "attn.proj.weight"], h + "attention.o_proj.bias": sd[t + "attn.proj.bias"],
            h + "layer_scale1.lambda1": sd[t + "gamma_1"], h + "layer_scale2.lambda1": sd[t + "gamma_2"],
            h + "norm2.weight": sd[t + "norm2.weight"], h + "norm2.bias": sd[t + "norm2.bias"],
            h + "mlp.up_proj.weight": sd[t + "mlp.fc1.weight"], h + "mlp.up_proj.bias": sd[t + "mlp.fc1.bias"],
            h + "mlp.down_proj.weight": sd[t + "mlp.fc2.weight"], h + "mlp.down_proj.bias": sd[t + "mlp.fc2.bias"],
        })
    return out


def _hf_snapshot(folder, class_name: str, config: dict, weights: dict[str, torch.Tensor]):
    """A snapshot folder: transformers' config.json for ``config``, the mapped ``weights`` as model.safetensors."""
    import json

    import transformers

    cfg = getattr(transformers, class_name.replace("Model", "Config") if class_name != "DINOv3ViTModel"
                  else "DINOv3ViTConfig")(**config)
    folder.mkdir(parents=True)
    cfg.save_pretrained(str(folder))
    save_file({k: v.contiguous() for k, v in weights.items()}, str(folder / "model.safetensors"))
    (folder / "preprocessor_config.json").write_text(json.dumps(IMAGENET_PREPROCESSOR))
    return folder


def _hf(folder):
    from satbench.api import load

    return load(f"hf-transformers:{folder}", None).model  # strict: a mapping gap is a missing/unexpected key


def _features(model, x):
    with torch.no_grad():
        out = model.forward_features(x)
    return out.cls, out.patches


def _close(a, b) -> float:
    return float((a - b).abs().max())


DINOV2 = {"hidden_size": 384, "num_hidden_layers": DEPTH, "num_attention_heads": 6, "intermediate_size": 1536,
          "patch_size": 14, "image_size": 224, "layer_norm_eps": 1e-6, "layerscale_value": 1.0}


@pytest.mark.parametrize("timm_name,hf_class,antialias_differs", [
    ("vit_small_patch14_dinov2", "Dinov2Model", True),
    ("vit_small_patch14_reg4_dinov2", "Dinov2WithRegistersModel", False)])
def test_dinov2_timm_and_transformers_agree(tmp_path, monkeypatch, timm_name, hf_class, antialias_differs):
    registers = "reg4" in timm_name
    timm_model, sd = _timm(timm_name, 11, tmp_path / "timm", monkeypatch)
    config = dict(DINOV2, **({"num_register_tokens": 4} if registers else {}))
    hf_model = _hf(_hf_snapshot(tmp_path / "snap", hf_class, config, dinov2_timm_to_hf(sd, 384, registers, 11)))
    assert hf_model.layout == timm_model.layout  # cls (+4 registers) + patches in both
    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 224)  # the native grid (16 x 16): no position resampling in either library
    (tc, tp), (hc, hp) = _features(timm_model, x), _features(hf_model, x)
    assert _close(tc, hc) < ATOL and _close(tp, hp) < ATOL, "the key mapping or a block differs at the native grid"
    # a kNN scale: UC Merced's 0.25 -> 64 px, floored to 56 px for patch 14 (grid 4 x 4)
    x = torch.randn(2, 3, 56, 56)
    (tc, tp), (hc, hp) = _features(timm_model, x), _features(hf_model, x)
    gap = _close(tc, hc)
    if not antialias_differs:
        assert gap < ATOL and _close(tp, hp) < ATOL, f"{hf_class} at 56 px: CLS differs by {gap:.2e}"
        return
    assert gap > ATOL, "timm and transformers now resample DINOv2 positions alike: update this test and the docs"
    import timm.layers.pos_embed as pe
    import timm.models.vision_transformer as vt

    plain = pe.resample_abs_pos_embed
    monkeypatch.setattr(vt, "resample_abs_pos_embed", lambda *a, **k: plain(*a, **{**k, "antialias": False}))
    (tc, tp), (hc, hp) = _features(timm_model, x), _features(hf_model, x)
    assert _close(tc, hc) < ATOL and _close(tp, hp) < ATOL, (
        f"at 56 px the features differ by {gap:.2e}, and not only in the position-embedding resampling")


def test_dinov3_timm_eva_and_transformers_agree_at_224_and_at_knn_scales(tmp_path, monkeypatch):
    timm_model, sd = _timm("vit_small_patch16_dinov3", 12, tmp_path / "timm", monkeypatch)
    config = {"hidden_size": 384, "num_hidden_layers": DEPTH, "num_attention_heads": 6, "intermediate_size": 1536,
              "patch_size": 16, "image_size": 224, "num_register_tokens": 4, "layer_norm_eps": 1e-5,
              "rope_theta": 100.0, "query_bias": False, "key_bias": False, "value_bias": False}
    hf_model = _hf(_hf_snapshot(tmp_path / "snap", "DINOv3ViTModel", config, dinov3_timm_to_hf(sd, 384)))
    assert hf_model.layout == timm_model.layout and hf_model.feature_pool == timm_model.feature_pool == "cls"
    torch.manual_seed(0)
    for size in (224, 64, 32):  # 224 px and UC Merced's kNN scales 0.25 and 0.125 (RoPE: no resampling)
        x = torch.randn(2, 3, size, size)
        (tc, tp), (hc, hp) = _features(timm_model, x), _features(hf_model, x)
        assert _close(tc, hc) < ATOL and _close(tp, hp) < ATOL, (
            f"DINOv3 at {size} px: CLS differs by {_close(tc, hc):.2e}, patches by {_close(tp, hp):.2e} "
            "(the qkv split, RoPE or the layer-scale mapping)")
