"""SatMAE and Scale-MAE baselines (spec section 6): cards, strict MAE-checkpoint loading, the 2-D sin-cos
positional encodings (checked against loop implementations written here), Scale-MAE's input_res, and a kNN
run end to end through each baseline's code path.

CPU note: ViT-L is only built on the meta device (parameter counts). Every forward pass uses a reduced-size
variant (embed_dim 64, 4 heads, depth 2) of the same classes, built from the real cards with
``dataclasses.replace``: the code path (card -> family -> builder -> checkpoint reader -> strict load -> forward)
is the one ViT-L takes.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from satbench.models.backbones import FAMILIES, count_params
from satbench.models.backbones.satmae import SATMAE_DECODER_KEYS, SatMAEViT
from satbench.models.backbones.scalemae import SCALEMAE_DECODER_KEYS, ScaleMAEViT, input_res_for
from satbench.models.backbones.sincos import mae_2d_sincos, scalemae_2d_sincos
from satbench.errors import InputSizeError, ProtocolError, SatbenchError, WeightsError
from satbench.models.registry import get_card
from satbench.models.weights import load_model

D, HEADS, DEPTH, DEC = 64, 4, 2, 32
NAMES = ("satmae-vit_large-16", "scalemae-vit_large-16")


# --------------------------------------------------------------------------------------------------
# Independent references
# --------------------------------------------------------------------------------------------------
def loop_sincos(dim: int, rows: int, cols: int, res: float = 1.0, cls: bool = True) -> np.ndarray:
    """MAE's 2-D sin-cos written out per element: channels [0, D/2) encode the column (MAE's ``emb_h`` is fed
    ``grid[0]`` of ``meshgrid(grid_w, grid_h)``), [D/2, D) the row; each half is [sin | cos] over
    omega_k = 1 / 10000 ** (k / (D/4)); positions multiplied by ``res``; CLS row zeros."""
    q = dim // 4
    out = np.zeros((rows * cols + (1 if cls else 0), dim), dtype=np.float64)
    for i in range(rows):
        for j in range(cols):
            t = i * cols + j + (1 if cls else 0)
            for half, pos in ((0, j * res), (1, i * res)):
                for k in range(q):
                    omega = 1.0 / 10000 ** (k / q)
                    out[t, half * 2 * q + k] = math.sin(pos * omega)
                    out[t, half * 2 * q + q + k] = math.cos(pos * omega)
    return out


def analytic_vit_params(dim: int, depth: int, patch: int = 16, tokens: int = 197, mlp: int = 4) -> int:
    patch_embed = 3 * patch * patch * dim + dim
    block = 2 * 2 * dim + (dim * 3 * dim + 3 * dim) + (dim * dim + dim) + (dim * mlp * dim + mlp * dim) + (mlp * dim * dim + dim)
    return patch_embed + dim + tokens * dim + depth * block + 2 * dim  # + cls + pos_embed + blocks + norm


def reference_forward(model, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """The MAE encoder written with functional ops (no timm): conv patchify, + pos, [CLS + pos0], pre-norm blocks
    (LayerNorm eps 1e-6, fused qkv with bias, softmax(q k^T / sqrt(hd)), exact GELU MLP), final norm, CLS."""
    sd = {k: v.double() for k, v in model.state_dict().items()}
    t = F.conv2d(x.double(), sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=16)
    t = t.flatten(2).transpose(1, 2) + pos[:, 1:].double()
    cls = (sd["cls_token"] + pos[:, :1].double()).expand(t.shape[0], -1, -1)
    t = torch.cat([cls, t], 1)
    ln = lambda z, p: F.layer_norm(z, (z.shape[-1],), sd[p + ".weight"], sd[p + ".bias"], eps=1e-6)  # noqa: E731
    b, n, d = t.shape
    h = model.num_heads
    for i in range(model.depth):
        p = f"blocks.{i}."
        qkv = F.linear(ln(t, p + "norm1"), sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"])
        q, k, v = qkv.reshape(b, n, 3, h, d // h).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // h), dim=-1)
        t = t + F.linear((a @ v).transpose(1, 2).reshape(b, n, d), sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
        m = F.gelu(F.linear(ln(t, p + "norm2"), sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"]))
        t = t + F.linear(m, sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
    return ln(t, "norm")[:, 0]


# --------------------------------------------------------------------------------------------------
# Reduced cards and official-layout checkpoints
# --------------------------------------------------------------------------------------------------
def small_card(name: str):
    """The real card with reduced dims (embed 64, 4 heads, depth 2) and no downloadable weights."""
    return dataclasses.replace(get_card(name), name=f"test-{name}-d{DEPTH}", embed_dim=D, num_heads=HEADS, depth=DEPTH,
                               feature_dim=D, params_expected=None, weights={})


def decoder_keys(family: str) -> dict[str, torch.Tensor]:
    """Decoder-side tensors under the official names (MAE decoder; Scale-MAE adds its FPN/FCN heads)."""
    g = torch.Generator().manual_seed(7)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    keys = {"mask_token": r(1, 1, DEC), "decoder_embed.weight": r(DEC, D), "decoder_embed.bias": r(DEC),
            "decoder_pos_embed": r(1, 197, DEC), "decoder_norm.weight": r(DEC), "decoder_norm.bias": r(DEC)}
    for part, shape in (("norm1", (DEC,)), ("attn.qkv", (3 * DEC, DEC)), ("attn.proj", (DEC, DEC)),
                        ("norm2", (DEC,)), ("mlp.fc1", (4 * DEC, DEC)), ("mlp.fc2", (DEC, 4 * DEC))):
        if len(shape) == 1:
            keys[f"decoder_blocks.0.{part}.weight"], keys[f"decoder_blocks.0.{part}.bias"] = r(*shape), r(*shape)
        else:
            keys[f"decoder_blocks.0.{part}.weight"], keys[f"decoder_blocks.0.{part}.bias"] = r(*shape), r(shape[0])
    if family == "satmae":
        keys["decoder_pred.weight"], keys["decoder_pred.bias"] = r(16 * 16 * 3, DEC), r(16 * 16 * 3)
    else:
        keys.update({"mask_token_decoder": r(1, 1, DEC), "fpn.fpn1.0.weight": r(DEC, DEC, 2, 2),
                     "fpn.fpn1.0.bias": r(DEC), "fcn_high.conv_layers.0.weight": r(8, DEC, 3, 3),
                     "fcn_low.conv_layers.0.weight": r(8, DEC, 3, 3), "fcn.conv_layers.0.weight": r(8, DEC, 3, 3)})
    return keys


def encoder_keys(family: str, seed: int = 1) -> dict[str, torch.Tensor]:
    """Encoder tensors under the official names with random values (pos_embed: the fixed sin-cos table)."""
    torch.manual_seed(0)
    ref = FAMILIES[family].build(small_card(NAMES[0] if family == "satmae" else NAMES[1]))
    g = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(v.shape, generator=g) * 0.05 for k, v in ref.state_dict().items()}
    for k in sd:
        if k.endswith("norm1.weight") or k.endswith("norm2.weight") or k == "norm.weight":
            sd[k] = sd[k] + 1.0
    sd["pos_embed"] = torch.from_numpy(mae_2d_sincos(D, 14, cls_token=True)).float().unsqueeze(0)
    return sd


def save_mae_checkpoint(path: Path, model_sd: dict[str, torch.Tensor]) -> Path:
    """A full MAE-format checkpoint, as SatMAE's / Scale-MAE's ``misc.save_model`` writes it."""
    obj = {
        "model": model_sd,
        "optimizer": {"state": {}, "param_groups": [{"lr": 1.5e-4, "weight_decay": 0.05, "params": [0, 1]}]},
        "epoch": 799,
        "scaler": {"scale": 65536.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                   "_growth_tracker": 0},
        "args": argparse.Namespace(model="mae_vit_large_patch16", input_size=224, mask_ratio=0.75, norm_pix_loss=False,
                                   blr=1.5e-4, epochs=800, batch_size=64),
    }
    torch.save(obj, path)
    return path


FAMILY = {"satmae-vit_large-16": "satmae", "scalemae-vit_large-16": "scalemae"}


# --------------------------------------------------------------------------------------------------
# Cards and parameter counts
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_card_and_vit_large_param_count(name):
    card = get_card(name)
    assert card.family == FAMILY[name] and card.patch_size == 16 and card.embed_dim == 1024 and card.depth == 24
    expected = analytic_vit_params(1024, 24)
    assert expected == 303_301_632
    assert card.params_expected == expected
    with torch.device("meta"):
        model = FAMILIES[card.family].build(card, **card.options)
        import timm

        timm_l = timm.create_model("vit_large_patch16_224", pretrained=False, num_classes=0)
    assert count_params(model, card.params_exclude) == expected == count_params(timm_l)
    assert model.state_dict()["pos_embed"].shape == (1, 197, 1024)
    assert not model.pos_embed.requires_grad  # fixed sin-cos, as MAE
    entry = card.weights["pretrain"]
    if name.startswith("satmae"):
        # SatMAE util/datasets.py lines 94-95 (commit e31c11f), exactly; pinned in tests/backbones/test_baselines_exact.py
        assert card.normalization == "satmae-fmow-exact" and card.norm.mean[0] == 0.4182007312774658
        assert entry["url"] == "https://zenodo.org/record/7369797/files/fmow_pretrain.pth"
        assert entry["filename"] == "fmow_pretrain.pth"
    else:
        assert card.normalization == "imagenet"
        assert entry["url"].endswith("/releases/download/base-800/scalemae-vitlarge-800.pth")
        assert entry["filename"] == "scalemae-vitlarge-800.pth"


# --------------------------------------------------------------------------------------------------
# Strict loading of MAE-format checkpoints
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_full_mae_checkpoint_loads_strictly(name, tmp_path):
    fam = FAMILY[name]
    enc, dec = encoder_keys(fam), decoder_keys(fam)
    path = save_mae_checkpoint(tmp_path / "ckpt.pth", {**enc, **dec})
    loaded = load_model(small_card(name), str(path))  # weights_only=True read (argparse.Namespace allow-listed)
    got = loaded.model.state_dict()
    assert sorted(got) == sorted(enc)
    for k, v in enc.items():
        assert torch.equal(got[k], v), k
    assert loaded.weights.extras["dropped_decoder_keys"] == len(dec)
    assert loaded.weights.extras["epoch"] == 799
    # every key of the synthesized decoder is covered by the family's explicit list
    lst = SATMAE_DECODER_KEYS if fam == "satmae" else SCALEMAE_DECODER_KEYS
    assert all(k in lst or k.startswith(tuple(p for p in lst if p.endswith("."))) for k in dec)
    # 'module.' prefixed (DDP) checkpoints load too
    path2 = save_mae_checkpoint(tmp_path / "ddp.pth", {f"module.{k}": v for k, v in {**enc, **dec}.items()})
    assert torch.equal(load_model(small_card(name), str(path2)).model.state_dict()["blocks.1.mlp.fc2.weight"],
                       enc["blocks.1.mlp.fc2.weight"])


@pytest.mark.parametrize("name", NAMES)
def test_wrong_checkpoints_fail_with_key_lists(name, tmp_path):
    fam = FAMILY[name]
    enc, dec = encoder_keys(fam), decoder_keys(fam)
    bad = {**enc, **dec, "head.weight": torch.zeros(10, D)}
    with pytest.raises(WeightsError, match=r"unexpected keys: head\.weight"):
        load_model(small_card(name), str(save_mae_checkpoint(tmp_path / "a.pth", bad)))
    missing = {k: v for k, v in {**enc, **dec}.items() if k != "blocks.1.mlp.fc2.bias"}
    with pytest.raises(WeightsError, match=r"missing keys: blocks\.1\.mlp\.fc2\.bias"):
        load_model(small_card(name), str(save_mae_checkpoint(tmp_path / "b.pth", missing)))
    shaped = {**enc, **dec, "cls_token": torch.zeros(1, 2, D)}
    with pytest.raises(WeightsError, match=r"mis-shaped keys: cls_token"):
        load_model(small_card(name), str(save_mae_checkpoint(tmp_path / "c.pth", shaped)))
    torch.save({"optimizer": {}, "epoch": 3}, tmp_path / "d.pth")
    with pytest.raises(WeightsError, match="no 'model' state dict"):
        load_model(small_card(name), str(tmp_path / "d.pth"))


def test_decoder_lists_are_per_family(tmp_path):
    """A Scale-MAE-only decoder key (fpn.*) is not silently dropped from a SatMAE checkpoint."""
    enc = encoder_keys("satmae")
    path = save_mae_checkpoint(tmp_path / "x.pth", {**enc, **decoder_keys("scalemae")})
    with pytest.raises(WeightsError, match=r"unexpected keys: .*fcn\.conv_layers\.0\.weight"):
        load_model(small_card("satmae-vit_large-16"), str(path))


# --------------------------------------------------------------------------------------------------
# Positional encodings
# --------------------------------------------------------------------------------------------------
def test_mae_sincos_matches_loop_formula_and_axis_order():
    got = mae_2d_sincos(16, 3, 5, cls_token=True)  # non-square: pins which axis comes first
    ref = loop_sincos(16, 3, 5)
    assert got.shape == (16, 16)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
    assert not got[0].any()
    # token (row 0, col 1): the FIRST channel is sin(column * omega_0) = sin(1)
    assert got[1 + 1, 0] == pytest.approx(math.sin(1.0)) and got[1 + 5, 0] == 0.0  # (row 1, col 0)
    # the table SatMAE's ViT-L stores at 224 px
    np.testing.assert_allclose(mae_2d_sincos(1024, 14, cls_token=True), loop_sincos(1024, 14, 14), atol=1e-12)


def test_scalemae_sincos_scales_positions_per_sample():
    res = torch.tensor([1.0, 0.5, 2.8])
    got = scalemae_2d_sincos(32, 4, res, cls_token=True)
    assert got.shape == (3, 17, 32) and got.dtype == torch.float32
    for b, r in enumerate(res.tolist()):
        np.testing.assert_allclose(got[b].numpy(), loop_sincos(32, 4, 4, res=r), atol=2e-6)
    np.testing.assert_allclose(got[0].numpy(), mae_2d_sincos(32, 4, cls_token=True), atol=2e-6)


def test_satmae_positions_stored_regenerated_or_interpolated():
    card = small_card("satmae-vit_large-16")
    regen = FAMILIES["satmae"].build(card, pos_embed="regenerate")
    interp = FAMILIES["satmae"].build(card, pos_embed="interpolate")
    assert regen.options["pos_embed"] == "regenerate" and interp.options["pos_embed"] == "interpolate"
    # at the stored 14 x 14 grid the stored table is used as is (what the official forward adds)
    with torch.no_grad():
        regen.pos_embed[:, 1:].add_(1.0)
    assert torch.equal(regen.patch_pos_embed(14, 14), regen.pos_embed[:, 1:])
    # other grids: MAE's formula at the actual grid (rows x cols)
    np.testing.assert_allclose(regen.patch_pos_embed(6, 10)[0].numpy(), loop_sincos(D, 6, 10, cls=False), atol=1e-6)
    # or the stored table bicubic-resized to the grid (independent: numpy layout -> torch interpolate)
    table = interp.pos_embed[0, 1:].detach().reshape(14, 14, D).permute(2, 0, 1)[None]
    want = F.interpolate(table, size=(6, 10), mode="bicubic", align_corners=False)[0].permute(1, 2, 0).reshape(60, D)
    torch.testing.assert_close(interp.patch_pos_embed(6, 10)[0], want)
    assert not torch.allclose(interp.patch_pos_embed(6, 10), regen.patch_pos_embed(6, 10))
    with pytest.raises(SatbenchError, match="pos_embed must be one of"):
        FAMILIES["satmae"].build(card, pos_embed="nearest")


@pytest.mark.parametrize("name", NAMES)
def test_forward_matches_functional_reference(name):
    torch.manual_seed(0)
    fam = FAMILY[name]
    model = FAMILIES[fam].build(small_card(name)).eval()
    x = torch.randn(2, 3, 96, 96)
    if fam == "satmae":
        pos = torch.from_numpy(loop_sincos(D, 6, 6)).float()[None]  # regenerated at the 6 x 6 grid
        out = model.forward_features(x)
    else:
        pos = torch.from_numpy(loop_sincos(D, 6, 6, res=0.75)).float()[None]
        out = model.forward_features(x, input_res=0.75)
    ref = reference_forward(model, x, pos)
    torch.testing.assert_close(out.cls.double(), ref, rtol=1e-4, atol=1e-4)
    assert out.patches.shape == (2, 36, D) and out.grid == (6, 6) and out.register is None


def test_satmae_rejects_input_res():
    model = FAMILIES["satmae"].build(small_card("satmae-vit_large-16")).eval()
    with pytest.raises(SatbenchError, match="SatMAE takes no input_res"):
        model.forward_features(torch.zeros(1, 3, 32, 32), input_res=1.0)


def test_scalemae_input_res_changes_features_deterministically():
    torch.manual_seed(0)
    model = FAMILIES["scalemae"].build(small_card("scalemae-vit_large-16")).eval()
    x = torch.randn(1, 3, 64, 64).expand(2, -1, -1, -1).contiguous()
    with torch.no_grad():
        a = model.forward_features(x, input_res=1.0).cls
        a2 = model.forward_features(x, input_res=1.0).cls
        none = model.forward_features(x).cls
        b = model.forward_features(x, input_res=3.5).cls
        per = model.forward_features(x, input_res=torch.tensor([1.0, 3.5])).cls
        model.pos_embed.add_(5.0)  # the stored table is not used in Scale-MAE's forward
        after = model.forward_features(x, input_res=1.0).cls
    assert torch.equal(a, a2) and torch.equal(a, none) and torch.equal(a, after)
    assert (a - b).abs().max() > 1e-3
    torch.testing.assert_close(per[0], a[0]) and torch.testing.assert_close(per[1], b[1])
    with pytest.raises(InputSizeError, match="square"):
        model.forward_features(torch.zeros(1, 3, 32, 64))
    with pytest.raises(SatbenchError, match="3 values for a batch of 2"):
        model.forward_features(x, input_res=torch.ones(3))
    with pytest.raises(SatbenchError, match="positive and finite"):
        model.forward_features(x, input_res=-1.0)


def test_input_res_policies():
    assert input_res_for("1.0", 64) == 1.0
    assert input_res_for("224/size", 112) == 2.0 and input_res_for("224/size", 448) == 0.5
    with pytest.raises(ProtocolError, match="input_res policy"):
        input_res_for("native", 224)


@pytest.mark.parametrize("name", NAMES)
def test_mean_pool_option(name):
    model = FAMILIES[FAMILY[name]].build(small_card(name), pool="mean").eval()
    assert model.options["pool"] == "mean"
    with torch.no_grad():
        out = model.forward_features(torch.randn(2, 3, 48, 48))
        torch.testing.assert_close(out.cls, out.patches.mean(1))
        torch.testing.assert_close(model(torch.randn(1, 3, 48, 48)).shape, torch.Size([1, D]))
    with pytest.raises(SatbenchError, match="pool must be one of"):
        FAMILIES[FAMILY[name]].build(small_card(name), pool="max")


# --------------------------------------------------------------------------------------------------
# kNN end to end (reduced-size variants of the baselines; ViT-L would take minutes on 2 CPU cores)
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,protocol,policy", [
    ("satmae-vit_large-16", "satdino-knn-v1", "none"),
    ("scalemae-vit_large-16", "scalemae-knn-v1", "224/size"),  # (Scale-MAE + satdino-knn-v1: the CLI test below)
])
def test_knn_end_to_end_through_baseline(name, protocol, policy, tmp_path, ucm_mini):
    from satbench.eval.task_knn import run_knn
    from satbench.data.catalog import get_dataset_spec
    from satbench.config.protocols import load_protocol

    fam = FAMILY[name]
    path = save_mae_checkpoint(tmp_path / "ckpt.pth", {**encoder_keys(fam), **decoder_keys(fam)})
    loaded = load_model(small_card(name), str(path))
    proto = load_protocol(protocol).with_overrides(scales=[0.125], k=[10, 20])
    norm = get_dataset_spec("uc_merced").norm if protocol == "scalemae-knn-v1" else None  # its table has EuroSAT only
    rec = run_knn(loaded, ucm_mini, proto, device="cpu", batch_size=64, progress=False, backend="faiss",
                  normalization=norm)
    assert 0.0 <= rec["summary"]["top1_avg"] <= 100.0
    entry = rec["metrics"]["per_scale"][0]
    assert entry["size"] == 32
    assert entry.get("input_res") == (None if policy == "none" else 7.0)
    opts = rec["extractor"]["model_options"]
    assert opts["pool"] == "cls" and (fam != "satmae" or opts["pos_embed"] == "regenerate")
    assert rec["weights"]["sha256"] == loaded.weights.sha256


def test_knn_cli_with_scalemae(tmp_path, monkeypatch, capsys):
    """`satbench run --task knn --model scalemae-vit_large-16 --weights CKPT` (default protocol satdino-knn-v1, so
    input_res None = 1.0): the card lookup is redirected to the reduced-size variant (the checkpoint matches it);
    everything else is the real CLI path."""
    import json

    import satbench.models.registry as registry
    from satbench.cli.app import main

    real = registry.get_card
    monkeypatch.setattr(registry, "get_card",
                        lambda n: small_card(n) if n == "scalemae-vit_large-16" else real(n))
    path = save_mae_checkpoint(tmp_path / "scalemae.pth", {**encoder_keys("scalemae"), **decoder_keys("scalemae")})
    out = tmp_path / "runs"
    rc = main(["run", "--task", "knn", "--model", "scalemae-vit_large-16", "--weights", str(path), "--scales", "0.125",
               "--k", "10", "20", "--no-progress", "--device", "cpu", "--results-dir", str(out), "--no-cache"])
    assert rc == 0
    recs = [json.loads(p.read_text()) for p in out.glob("*.json")]
    assert len(recs) == 1 and recs[0]["task"] == "knn"
    assert recs[0]["metrics"]["per_scale"][0].get("input_res") is None
    assert recs[0]["extractor"]["model_options"] == {"pool": "cls", "attn_impl": "matmul"}
    assert "average" in capsys.readouterr().out
