"""The registered mmseg backbone: same features as satbench's FeatureExtractor, strict weights, frozen mode."""

from __future__ import annotations


import pytest
import torch
from support.paths import SEG_FIXTURES

pytest.importorskip("mmseg")

FIX = SEG_FIXTURES
CARD = str(FIX / "cards" / "seg-test-vit_tiny-16.yaml")


pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture
def saved_tiny(tmp_path):
    from satbench.seg.backbone import resolve_card
    from satbench.models.weights import load_model

    loaded = load_model(resolve_card(CARD), "random", seed=3)
    path = tmp_path / "tiny.pth"
    torch.save(loaded.model.state_dict(), path)
    return path


@pytest.mark.parametrize("dataset", ["potsdam", "vaihingen"])
def test_registered_backbone_matches_feature_extractor_layers(saved_tiny, dataset):
    """Real tile -> mmseg pipeline + SegDataPreProcessor -> SatbenchBackbone must equal
    FeatureExtractor(layers=...) on the same RGB-as-stored pixels (the card's normalisation in both)."""
    import numpy as np
    from mmengine.dataset import pseudo_collate
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, MODELS
    from PIL import Image

    from satbench.models.features import FeatureExtractor
    from satbench.seg.backbone import resolve_card
    from satbench.seg.config import build_config
    from satbench.models.weights import load_model

    cfg = build_config(CARD, dataset, 224, weights=str(saved_tiny), data_root=FIX / dataset,
                       cfg_options={"model.decode_head.channels": 16, "model.auxiliary_head.channels": 16})
    # no Resize: compare on the stored pixels
    cfg.val_dataloader.dataset.pipeline = [t for t in cfg.val_dataloader.dataset.pipeline if t["type"] != "Resize"]
    init_default_scope("mmseg")
    seg = MODELS.build(cfg.model).eval()
    assert seg.backbone.weights_info.source == "file" and seg.backbone.out_indices == (3, 5, 7, 11)
    ds = DATASETS.build(cfg.val_dataloader.dataset)
    ds_item = ds[0]
    data = seg.data_preprocessor(pseudo_collate([ds_item]), training=False)
    with torch.no_grad():
        maps = seg.backbone(data["inputs"])
    # independent path: the same file, read as stored, through satbench's FeatureExtractor
    img_path = ds_item["data_samples"].img_path
    rgb = torch.from_numpy(np.asarray(Image.open(img_path).convert("RGB"))).permute(2, 0, 1)[None]
    fx = FeatureExtractor(load_model(resolve_card(CARD), str(saved_tiny)), device="cpu")
    feats = fx(rgb, layers=(3, 5, 7, 11))
    gh, gw = feats.grid
    assert len(maps) == 4
    for m, i in zip(maps, (3, 5, 7, 11)):
        ref = feats.layers[i].transpose(1, 2).reshape(1, 192, gh, gw)
        assert m.shape == ref.shape == (1, 192, 128 // 16, 128 // 16)
        assert torch.allclose(m, ref, atol=2e-5), (i, (m - ref).abs().max())
    # the pyramid: strides 4, 8, 16, 32
    with torch.no_grad():
        pyr = seg.neck(maps)
    assert [p.shape[-1] for p in pyr] == [32, 16, 8, 4]


def test_weights_load_strictly(tmp_path, saved_tiny):
    from satbench.errors import WeightsError
    from satbench.seg.backbone import SatbenchBackbone

    sd = torch.load(saved_tiny)
    del sd["blocks.2.attn.qkv.bias"]
    bad = tmp_path / "bad.pth"
    torch.save(sd, bad)
    with pytest.raises(WeightsError, match="missing keys: blocks.2.attn.qkv.bias"):
        SatbenchBackbone(CARD, weights=str(bad))
    a = SatbenchBackbone(CARD, weights="random", seed=1)
    b = SatbenchBackbone(CARD, weights="random", seed=1)
    c = SatbenchBackbone(CARD, weights="random", seed=2)
    assert torch.equal(a.vit.pos_embed, b.vit.pos_embed) and not torch.equal(a.vit.pos_embed, c.vit.pos_embed)


def test_frozen_backbone_gets_no_gradients_and_stays_in_eval():
    from satbench.seg.backbone import SatbenchBackbone

    bb = SatbenchBackbone(CARD, weights="random", frozen=True, build_options={"drop_path_rate": 0.1})
    bb.train()
    assert not bb.vit.training and all(not p.requires_grad for p in bb.parameters())
    x = torch.randn(1, 3, 64, 64, requires_grad=True)
    outs = bb(x)
    assert all(not o.requires_grad for o in outs)
    assert bb.options["frozen"] is True and bb.options["out_indices"] == [3, 5, 7, 11]
    ft = SatbenchBackbone(CARD, weights="random", norm_layers=False)
    ft.train()
    assert ft.vit.training and ft(x)[0].requires_grad
