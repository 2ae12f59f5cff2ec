"""DINO loss + centre, schedules, EMA, head, parameter groups (spec 2.1/2.2), against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from satbench.models.backbones.satdino import SatDINOViT
from satbench.pretrain.head import DINOHead, MultiCropWrapper
from satbench.pretrain.loss import DINOLoss
from satbench.pretrain.schedules import cosine_scheduler, scaled_lr, teacher_temp_schedule
from satbench.pretrain.trainer import cancel_gradients_last_layer, ema_update, get_params_groups


def _log_softmax(x):
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_dino_loss_and_center_against_independent_computation():
    rng = np.random.default_rng(0)
    B, K, ncrops = 3, 7, 4
    s = rng.normal(size=(ncrops * B, K)).astype(np.float64)
    t = rng.normal(size=(2 * B, K)).astype(np.float64)
    loss_mod = DINOLoss(K, ncrops, 0.04, 0.07, 3, 10, student_temp=0.1, center_momentum=0.9).double()
    center = np.zeros((1, K))
    for epoch in (0, 1, 5):
        got = loss_mod(torch.from_numpy(s), torch.from_numpy(t), epoch).item()
        temp = [0.04, 0.055, 0.07][min(epoch, 2)]
        total, n = 0.0, 0
        for iq in range(2):
            q = _softmax((t[iq * B:(iq + 1) * B] - center) / temp)
            for v in range(ncrops):
                if v == iq:
                    continue
                ls = _log_softmax(s[v * B:(v + 1) * B] / 0.1)
                total += np.mean([-(q[b] * ls[b]).sum() for b in range(B)])
                n += 1
        assert n == 2 * (ncrops - 1)
        assert got == pytest.approx(total / n, rel=1e-10)
        center = 0.9 * center + 0.1 * t.mean(axis=0, keepdims=True)
        np.testing.assert_allclose(loss_mod.center.numpy(), center, rtol=1e-12)


def test_teacher_temperature_per_epoch():
    sched = teacher_temp_schedule(0.04, 0.07, 30, 200)
    assert len(sched) == 200
    assert sched[0] == 0.04 and sched[29] == pytest.approx(0.07) and sched[199] == 0.07
    assert sched[15] == pytest.approx(0.04 + 0.03 * 15 / 29)


def test_cosine_schedules_at_chosen_iterations():
    niter, epochs, warm = 10, 20, 2
    base = scaled_lr(0.001, 64, 4)
    assert base == pytest.approx(0.001)
    lr = cosine_scheduler(base, 2e-5, epochs, niter, warmup_epochs=warm)
    assert len(lr) == 200
    assert lr[0] == 0.0
    assert lr[10] == pytest.approx(base * 10 / 19)  # np.linspace(0, base, 20)[10]
    assert lr[20] == pytest.approx(base)
    n_cos = 180
    for it in (20, 57, 110, 199):
        i = it - 20
        assert lr[it] == pytest.approx(2e-5 + 0.5 * (base - 2e-5) * (1 + math.cos(math.pi * i / n_cos)))
    wd = cosine_scheduler(0.04, 0.4, epochs, niter)
    assert wd[0] == pytest.approx(0.04) and wd[100] == pytest.approx(0.22) and wd[-1] == pytest.approx(0.4, abs=1e-4)
    m = cosine_scheduler(0.996, 1.0, epochs, niter)
    assert m[0] == pytest.approx(0.996) and m[100] == pytest.approx(0.998) and m[-1] < 1.0


def test_ema_update():
    torch.manual_seed(0)
    s, t = nn.Linear(4, 3), nn.Linear(4, 3)
    before = [p.clone() for p in t.parameters()]
    ema_update(s, t, 0.9)
    for b, ps, pt in zip(before, s.parameters(), t.parameters()):
        torch.testing.assert_close(pt, 0.9 * b + 0.1 * ps, rtol=0, atol=1e-7)


def _tiny_wrapper(norm_last_layer):
    return MultiCropWrapper(SatDINOViT(patch_size=16, embed_dim=64, depth=2, num_heads=2),
                            DINOHead(64, 32, norm_last_layer=norm_last_layer, hidden_dim=16, bottleneck_dim=8))


def test_head_keys_and_weight_norm_flags():
    st, te = _tiny_wrapper(False), _tiny_wrapper(True)
    keys = set(st.state_dict())
    assert {"head.last_layer.weight_g", "head.last_layer.weight_v", "head.mlp.0.weight", "head.mlp.4.weight"} <= keys
    assert "head.last_layer.weight" not in keys and "head.last_layer.bias" not in keys
    assert st.head.last_layer.weight_g.requires_grad and not te.head.last_layer.weight_g.requires_grad
    assert torch.all(te.head.last_layer.weight_g == 1)
    # the output rows have norm |g| = 1 at init: L2-normalised bottleneck times unit-norm rows
    out = te.head(torch.randn(5, 64))
    assert out.abs().max() <= 1.0 + 1e-5


def test_multicrop_wrapper_batches_by_resolution_and_returns_registers():
    torch.manual_seed(0)
    w = _tiny_wrapper(False).eval()
    crops = [torch.randn(2, 3, 32, 32) for _ in range(2)] + [torch.randn(2, 3, 16, 16) for _ in range(3)]
    out, reg = w(crops)
    assert out.shape == (10, 32) and reg.shape == (10, 64)
    # crop-major order; each crop alone gives the same numbers
    single = w.backbone.forward_features(crops[3])
    torch.testing.assert_close(reg[6:8], single.register, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out[6:8], w.head(single.cls), rtol=1e-5, atol=1e-5)


def test_param_groups_and_frozen_last_layer():
    w = _tiny_wrapper(False)
    g0, g1 = get_params_groups(w)
    ids0 = {id(p) for p in g0["params"]}
    for name in ("backbone.cls_token", "backbone.pos_embed", "backbone.gsd_register", "backbone.blocks.0.attn.qkv.weight",
                 "head.last_layer.weight_g"):
        assert id(dict(w.named_parameters())[name]) in ids0, name
    ids1 = {id(p) for p in g1["params"]}
    for name in ("backbone.blocks.0.attn.qkv.bias", "backbone.norm.weight", "head.mlp.0.bias"):
        assert id(dict(w.named_parameters())[name]) in ids1, name
    assert g1["weight_decay"] == 0.0
    for p in w.parameters():
        p.grad = torch.ones_like(p)
    cancel_gradients_last_layer(0, w, 1)
    assert w.head.last_layer.weight_v.grad is None and w.head.last_layer.weight_g.grad is None
    assert w.head.mlp[0].weight.grad is not None
    for p in w.parameters():
        p.grad = torch.ones_like(p)
    cancel_gradients_last_layer(1, w, 1)
    assert w.head.last_layer.weight_v.grad is not None
