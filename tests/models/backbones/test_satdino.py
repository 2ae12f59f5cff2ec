"""SatDINO ViT: parameter counts, official keys, token layout, pos-embed interpolation, reference forward."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from satbench.models.backbones import count_params, linear_conv_gflops
from satbench.models.backbones.satdino import SatDINOViT, build_satdino, vit_small
from satbench.errors import InputSizeError


@pytest.mark.parametrize("arch,patch,expected,gflops", [
    ("vit_small", 16, 21_590_400, 8.54),
    ("vit_small", 8, 21_369_216, 33.56),
    ("vit_base", 16, 85_648_128, 33.90),
])
def test_param_counts_match_paper(arch, patch, expected, gflops):
    m = build_satdino(arch=arch, patch_size=patch)
    assert count_params(m, exclude=("pos_embed",)) == expected
    # The paper's GFLOPs column counts Linear+Conv MACs x2 at 198 tokens; ours agrees within 0.3 %.
    assert abs(linear_conv_gflops(m, 224) - gflops) / gflops < 0.003


def _official_keys(depth: int) -> list[str]:
    keys = ["cls_token", "gsd_register", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias"]
    for i in range(depth):
        for part in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            keys += [f"blocks.{i}.{part}.weight", f"blocks.{i}.{part}.bias"]
    return keys + ["norm.weight", "norm.bias"]


def test_state_dict_keys_and_shapes_are_official():
    sd = vit_small(16).state_dict()
    assert sorted(sd) == sorted(_official_keys(12))
    assert len(sd) == 151
    assert sd["pos_embed"].shape == (1, 198, 384)
    assert sd["blocks.0.attn.qkv.weight"].shape == (1152, 384)
    assert sd["blocks.0.mlp.fc1.weight"].shape == (1536, 384)
    assert sd["patch_embed.proj.weight"].shape == (384, 3, 16, 16)
    assert vit_small(8).state_dict()["pos_embed"].shape == (1, 786, 384)


def official_interpolate(pos_embed: torch.Tensor, w: int, h: int, patch: int) -> torch.Tensor:
    """A transcription of SatDINO's ``interpolate_pos_encoding`` (spec 1.5), written independently of satbench."""
    npatch = (w // patch) * (h // patch) + 1
    N = pos_embed.shape[1] - 1
    if npatch == N and w == h:
        return pos_embed
    class_pos_embed = pos_embed[:, 0]
    patch_pos_embed = pos_embed[:, 1:-1]
    reg_pos_embed = pos_embed[:, -1]
    dim = pos_embed.shape[-1]
    w0, h0 = w // patch + 0.1, h // patch + 0.1
    patch_pos_embed = F.interpolate(
        patch_pos_embed.reshape(1, int(math.sqrt(N)), int(math.sqrt(N)), dim).permute(0, 3, 1, 2),
        scale_factor=(w0 / math.sqrt(N), h0 / math.sqrt(N)), mode="bicubic")
    assert int(w0) == patch_pos_embed.shape[-2] and int(h0) == patch_pos_embed.shape[-1]
    patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
    return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed, reg_pos_embed.unsqueeze(0)), dim=1)


@pytest.mark.parametrize("patch,size", [(16, 224), (16, 112), (16, 64), (16, 16), (16, 592), (16, 288), (8, 64), (8, 256), (16, 624)])
def test_pos_embed_interpolation_matches_official_formula(patch, size):
    torch.manual_seed(0)
    m = vit_small(patch)
    got = m.interpolate_pos_encoding(size, size)
    want = official_interpolate(m.pos_embed.detach(), size, size, patch)
    n = size // patch
    assert got.shape == (1, n * n + 2, 384)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    # CLS and register slots are never interpolated.
    assert torch.equal(got[:, 0], m.pos_embed[:, 0]) and torch.equal(got[:, -1], m.pos_embed[:, -1])


def test_pos_embed_interpolation_is_not_the_naive_one():
    """The official scale factor (n + 0.1) / sqrt(197) gives different numbers from size=(n, n) or sqrt(196)."""
    torch.manual_seed(0)
    m = vit_small(16)
    grid = m.pos_embed[:, 1:-1].reshape(1, 14, 14, 384).permute(0, 3, 1, 2)
    official = m.interpolate_pos_encoding(128, 128)[:, 1:-1]
    naive = F.interpolate(grid, size=(8, 8), mode="bicubic").permute(0, 2, 3, 1).reshape(1, 64, 384)
    sqrt196 = F.interpolate(grid, scale_factor=(8.1 / 14, 8.1 / 14), mode="bicubic").permute(0, 2, 3, 1).reshape(1, 64, 384)
    assert (official - naive).abs().max() > 1e-3
    assert (official - sqrt196).abs().max() > 1e-4


def test_pos_embed_interpolation_pinned_values():
    """Pins the interpolated values of a deterministic table: a change here is protocol drift (torch or code)."""
    m = vit_small(16)
    with torch.no_grad():
        m.pos_embed.copy_(torch.linspace(-1, 1, 198 * 384).reshape(1, 198, 384).sin())
    pins = {
        64: (-114.78165, -0.71712887, 0.68474305, 0.16523641),
        128: (-218.18196, -0.81062996, 0.79528803, 0.05113484),
        592: (-69.921875, -0.84606326, 0.84204686, -0.00498267),
    }
    for size, (total, first, last, mid) in pins.items():
        g = m.interpolate_pos_encoding(size, size)
        assert g[:, 1:-1].sum().item() == pytest.approx(total, abs=1e-2), size
        assert g[0, 1, 0].item() == pytest.approx(first, abs=1e-6), size
        assert g[0, -2, 100].item() == pytest.approx(last, abs=1e-6), size
        assert g[0, g.shape[1] // 2, 7].item() == pytest.approx(mid, abs=1e-6), size


def reference_forward(sd: dict, x: torch.Tensor, patch: int, heads: int) -> torch.Tensor:
    """An independent ViT forward from the raw official state dict (plain tensor ops)."""
    B, _, H, W = x.shape
    D = sd["cls_token"].shape[-1]
    t = F.conv2d(x, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=patch).flatten(2).transpose(1, 2)
    t = torch.cat([sd["cls_token"].expand(B, -1, -1), t, sd["gsd_register"].expand(B, -1, -1)], dim=1)
    t = t + official_interpolate(sd["pos_embed"], H, W, patch)
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    hd = D // heads
    for i in range(depth):
        g = lambda n: sd[f"blocks.{i}.{n}"]  # noqa: E731
        h = F.layer_norm(t, (D,), g("norm1.weight"), g("norm1.bias"), eps=1e-6)
        qkv = (h @ g("attn.qkv.weight").T + g("attn.qkv.bias")).reshape(B, -1, 3, heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * hd ** -0.5).softmax(dim=-1)
        o = (attn @ v).transpose(1, 2).reshape(B, -1, D)
        t = t + (o @ g("attn.proj.weight").T + g("attn.proj.bias"))
        h = F.layer_norm(t, (D,), g("norm2.weight"), g("norm2.bias"), eps=1e-6)
        h = F.gelu(h @ g("mlp.fc1.weight").T + g("mlp.fc1.bias"))
        t = t + (h @ g("mlp.fc2.weight").T + g("mlp.fc2.bias"))
    t = F.layer_norm(t, (D,), sd["norm.weight"], sd["norm.bias"], eps=1e-6)
    return t[:, 0]


@pytest.mark.parametrize("size", [224, 112, 64, 16, 592])
def test_forward_matches_independent_reference(size):
    torch.manual_seed(1)
    m = SatDINOViT(patch_size=16, embed_dim=192, depth=2, num_heads=3).eval()
    x = torch.randn(2, 3, size, size)
    sd = {k: v.detach().clone() for k, v in m.state_dict().items()}
    with torch.no_grad():
        out = m(x)
        feats = m.forward_features(x, layers=(0, 1))
    ref = reference_forward(sd, x, 16, 3)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(feats.cls, out, rtol=0, atol=0)
    n = (size // 16) ** 2
    assert feats.patches.shape == (2, n, 192) and feats.register.shape == (2, 192)
    assert feats.grid == (size // 16, size // 16)


def test_token_layout_register_is_last():
    """The GSD register sits at the end: its output changes when gsd_register changes, CLS is index 0."""
    torch.manual_seed(2)
    m = SatDINOViT(patch_size=16, embed_dim=192, depth=2, num_heads=3).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        tokens = m.prepare_tokens(x)
        assert tokens.shape == (1, 1 + 16 + 1, 192)
        expected_reg = m.gsd_register[0, 0] + m.pos_embed[0, -1]
        torch.testing.assert_close(tokens[0, -1], expected_reg)
        torch.testing.assert_close(tokens[0, 0], m.cls_token[0, 0] + m.pos_embed[0, 0])


def test_large_inputs_rejected_unless_size_interpolation_is_chosen():
    m = SatDINOViT(patch_size=16, embed_dim=192, depth=1, num_heads=3)
    with pytest.raises(InputSizeError, match="at most 39 patches per side"):
        m(torch.zeros(1, 3, 640, 640))
    m2 = SatDINOViT(patch_size=16, embed_dim=192, depth=1, num_heads=3, pos_interp="size")
    assert m2(torch.zeros(1, 3, 640, 640)).shape == (1, 192)
    assert m2.options["pos_interp"] == "size"


def test_sdpa_option_is_close_to_exact_matmul():
    torch.manual_seed(3)
    a = SatDINOViT(patch_size=16, embed_dim=192, depth=2, num_heads=3).eval()
    b = SatDINOViT(patch_size=16, embed_dim=192, depth=2, num_heads=3, attn_impl="sdpa").eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=1e-4, atol=1e-4)
    assert b.options["attn_impl"] == "sdpa"


def official_dino_interpolate(pos_embed: torch.Tensor, w: int, h: int, patch: int) -> torch.Tensor:
    """A transcription of plain DINO's ``interpolate_pos_encoding`` (facebookresearch/dino vision_transformer.py,
    used by SatDINO's main_dino.py ablation): no register slot, N = number of patches."""
    npatch = (w // patch) * (h // patch)
    N = pos_embed.shape[1] - 1
    if npatch == N and w == h:
        return pos_embed
    class_pos_embed = pos_embed[:, 0]
    patch_pos_embed = pos_embed[:, 1:]
    dim = pos_embed.shape[-1]
    w0, h0 = w // patch + 0.1, h // patch + 0.1
    patch_pos_embed = F.interpolate(
        patch_pos_embed.reshape(1, int(math.sqrt(N)), int(math.sqrt(N)), dim).permute(0, 3, 1, 2),
        scale_factor=(w0 / math.sqrt(N), h0 / math.sqrt(N)), mode="bicubic")
    assert int(w0) == patch_pos_embed.shape[-2] and int(h0) == patch_pos_embed.shape[-1]
    patch_pos_embed = patch_pos_embed.permute(0, 2, 3, 1).view(1, -1, dim)
    return torch.cat((class_pos_embed.unsqueeze(0), patch_pos_embed), dim=1)


def test_plain_dino_vit_keys_token_layout_and_interpolation():
    """gsd_register=False is DINO's ViT: 150 keys, pos_embed N+1, [CLS, patches], DINO's interpolation exactly
    (N = 196, so even 1024 px works at patch 16, unlike SatDINO's sqrt(197))."""
    torch.manual_seed(0)
    m = vit_small(16, gsd_register=False)
    sd = m.state_dict()
    assert sorted(sd) == sorted(k for k in _official_keys(12) if k != "gsd_register") and len(sd) == 150
    assert sd["pos_embed"].shape == (1, 197, 384)
    for size in (224, 112, 64, 16, 288, 1024):
        got = m.interpolate_pos_encoding(size, size)
        assert got.shape == (1, (size // 16) ** 2 + 1, 384)
        torch.testing.assert_close(got, official_dino_interpolate(m.pos_embed.detach(), size, size, 16), rtol=0, atol=0)
    x = torch.rand(2, 3, 64, 64)
    out = m.forward_features(x, layers=[1])
    assert out.register is None and out.patches.shape == (2, 16, 384) and out.layers[1].shape == (2, 16, 384)
    torch.testing.assert_close(out.cls, m(x))
    assert m.options["gsd_register"] is False and "gsd_register" not in vit_small(16).options
    with pytest.raises(RuntimeError, match="gsd_register"):  # SatDINO weights never load into a plain DINO ViT
        m.load_state_dict(vit_small(16).state_dict())
