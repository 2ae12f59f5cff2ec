"""Weights: official-layout checkpoints load strictly and reproduce the forward; every misfit is a clear error."""

from __future__ import annotations

import argparse
import dataclasses
import shutil

import pytest
import torch

from satbench.models.backbones.satdino import vit_base, vit_small
from satbench.errors import WeightsError
from satbench.models.registry import get_card
from satbench.models.weights import cached_weight_path, load_model, read_checkpoint


class NotOnTheSafeList:
    """A type a malicious or sloppy checkpoint might carry."""

    def __init__(self):
        self.x = 1


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """A seeded random ViT-S/16 saved in the official release layout (teacher + linear_head + args)."""
    torch.manual_seed(123)
    model = vit_small(16).eval()
    sd = model.state_dict()
    head = {"module.linear.weight": torch.randn(63, 384) * 0.01, "module.linear.bias": torch.zeros(63)}
    path = tmp_path_factory.mktemp("ckpt") / "satdino-vit_small-16.pth"
    torch.save({"teacher": sd, "linear_head": head, "args": argparse.Namespace(arch="vit_small", patch_size=16)}, path)
    return model, sd, path


def test_official_checkpoint_loads_strictly_and_reproduces_forward(official):
    model, _, path = official
    lm = load_model(get_card("satdino-vit_small-16"), str(path))
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():
        torch.testing.assert_close(lm.model(x), model(x), rtol=0, atol=0)
    assert lm.weights.sha256 and len(lm.weights.sha256) == 64
    assert lm.weights.source == "file"
    assert sorted(lm.linear_head) == ["linear.bias", "linear.weight"]  # module. prefix stripped


def test_training_checkpoint_prefixes_are_stripped_and_head_keys_dropped(official, tmp_path):
    _, sd, _ = official
    teacher = {f"backbone.{k}": v for k, v in sd.items()}
    teacher["head.last_layer.weight_g"] = torch.ones(1)
    student = {f"module.backbone.{k}": v for k, v in sd.items()}
    path = tmp_path / "checkpoint.pth"
    torch.save({"teacher": teacher, "student": student, "epoch": 3}, path)
    lm = load_model(get_card("satdino-vit_small-16"), str(path))
    assert lm.weights.extras["dropped_head_keys"] == ["head.last_layer.weight_g"]


def _save(tmp_path, obj, name="ckpt.pth"):
    path = tmp_path / name
    torch.save(obj, path)
    return str(path)


def test_missing_unexpected_and_misshaped_keys_are_listed(official, tmp_path):
    _, sd, _ = official
    card = get_card("satdino-vit_small-16")
    broken = dict(sd)
    broken.pop("gsd_register")
    with pytest.raises(WeightsError, match=r"missing keys: gsd_register"):
        load_model(card, _save(tmp_path, {"teacher": broken}))
    extra = dict(sd, **{"blocks.0.attn.q_norm.weight": torch.ones(64)})
    with pytest.raises(WeightsError, match=r"unexpected keys: blocks\.0\.attn\.q_norm\.weight"):
        load_model(card, _save(tmp_path, {"teacher": extra}))
    timm_style = dict(sd, pos_embed=sd["pos_embed"][:, :-1])  # the timm port drops the register slot
    with pytest.raises(WeightsError, match=r"mis-shaped keys: pos_embed \(1, 197, 384\) vs \(1, 198, 384\)"):
        load_model(card, _save(tmp_path, {"teacher": timm_style}))


def test_other_patch_size_or_architecture_says_so(tmp_path):
    card = get_card("satdino-vit_small-16")
    p8 = _save(tmp_path, {"teacher": vit_small(8).state_dict()}, "s8.pth")
    with pytest.raises(WeightsError, match=r"patch 8.*patch 16, depth 12 \(wrong architecture or patch size\)"):
        load_model(card, p8)
    b16 = _save(tmp_path, {"teacher": vit_base(16).state_dict()}, "b16.pth")
    with pytest.raises(WeightsError, match=r"embed_dim 768.*embed_dim 384"):
        load_model(card, b16)


def test_corrupt_truncated_empty_and_missing_files(official, tmp_path):
    card = get_card("satdino-vit_small-16")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint" * 10)
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        load_model(card, str(garbage))
    data = official[2].read_bytes()
    trunc = tmp_path / "trunc.pth"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        load_model(card, str(trunc))
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match="empty"):
        load_model(card, str(empty))
    with pytest.raises(WeightsError, match="does not exist"):
        load_model(card, str(tmp_path / "nope.pth"))


def test_unsafe_types_are_refused_unless_trusted(official, tmp_path):
    _, sd, _ = official
    path = _save(tmp_path, {"teacher": sd, "evil": NotOnTheSafeList()})
    with pytest.raises(WeightsError, match=r"NotOnTheSafeList.*--trust-checkpoint"):
        load_model(get_card("satdino-vit_small-16"), path)
    lm = load_model(get_card("satdino-vit_small-16"), path, trust_checkpoint=True)
    assert lm.weights.sha256


def test_nan_weights_are_refused(official, tmp_path):
    _, sd, _ = official
    bad = dict(sd)
    bad["norm.weight"] = torch.full_like(sd["norm.weight"], float("nan"))
    with pytest.raises(WeightsError, match="non-finite values.*norm.weight"):
        load_model(get_card("satdino-vit_small-16"), _save(tmp_path, {"teacher": bad}))


def test_safetensors_and_snapshot_directory(official, tmp_path):
    from safetensors.torch import save_file

    model, sd, path = official
    st = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(st))
    lm = load_model(get_card("satdino-vit_small-16"), str(st))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(lm.model(x), model(x), rtol=0, atol=0)
    snap = tmp_path / "snapshot"
    snap.mkdir()
    shutil.copy(path, snap / "satdino-vit_small-16.pth")
    (snap / "README.md").write_text("model card")
    assert load_model(get_card("satdino-vit_small-16"), str(snap)).weights.path.endswith("satdino-vit_small-16.pth")
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_model(get_card("satdino-vit_small-16"), str(bad_st))


def test_by_name_uses_cache_and_checks_sha256(official):
    _, _, path = official
    card = get_card("satdino-vit_small-16")
    target = cached_weight_path(card)
    with pytest.raises(WeightsError, match=f"not in the cache: place the weight file at {target}.*downloads are off"):
        load_model(card)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, target)
    lm = load_model(card)
    assert lm.weights.source == "cache"
    weights = {k: dict(v) for k, v in card.weights.items()}
    weights["pretrain"]["sha256"] = "0" * 64
    wrong = dataclasses.replace(card, weights=weights)
    with pytest.raises(WeightsError, match="does not match the card"):
        load_model(wrong)


def test_hub_download_goes_through_huggingface_hub(official, monkeypatch):
    _, _, path = official
    calls = []

    def fake_download(repo_id, filename, revision=None, local_dir=None):
        calls.append((repo_id, filename))
        dst = f"{local_dir}/{filename}"
        shutil.copy(path, dst)
        return dst

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.delenv("SATBENCH_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    from support.loopback_http import LoopbackServer

    with LoopbackServer() as srv:  # the one connection try of satbench.io.network must succeed (never the network)
        monkeypatch.setenv("HF_ENDPOINT", srv.url("/").rstrip("/"))
        lm = load_model(get_card("satdino-vit_small-16"))
    assert calls == [("strakajk/satdino-vit_small-16", "satdino-vit_small-16.pth")]
    assert lm.weights.source == "hub"


def test_random_init_is_seeded():
    card = get_card("satdino-vit_small-16")
    a = load_model(card, "random", seed=5).model.state_dict()
    b = load_model(card, "random", seed=5).model.state_dict()
    c = load_model(card, "random", seed=6).model.state_dict()
    assert torch.equal(a["blocks.3.attn.qkv.weight"], b["blocks.3.attn.qkv.weight"])
    assert not torch.equal(a["blocks.3.attn.qkv.weight"], c["blocks.3.attn.qkv.weight"])


def test_read_checkpoint_allows_numpy_scalars_in_args(tmp_path):
    import numpy as np

    path = _save(tmp_path, {"model": {"w": torch.ones(1)}, "epoch": 799,
                            "args": argparse.Namespace(lr=np.float64(1e-3), n=np.int64(3))})
    obj = read_checkpoint(path)
    assert obj["epoch"] == 799 and float(obj["args"].lr) == 1e-3
