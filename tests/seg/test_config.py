"""Segmentation configs, the mmcv-lite compatibility layer and the layer-decay constructor."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("mmseg")

from satbench.runtime import mmcv_compat  # noqa: E402
from support.paths import SEG_FIXTURES

FIX = SEG_FIXTURES
CARD = str(FIX / "cards" / "seg-test-vit_tiny-16.yaml")


pytestmark = pytest.mark.usefixtures("one_thread_module")


def test_compat_layer_exposes_pure_ops_only():
    assert mmcv_compat.install() is True  # mmcv-lite here: no compiled mmcv._ext
    import mmcv.ops as ops

    assert mmcv_compat.is_installed()
    with pytest.raises(ModuleNotFoundError, match="mmcv._ext"):
        ops.nms  # noqa: B018 - compiled op
    with pytest.raises(RuntimeError, match="compiled mmcv"):
        ops.sigmoid_focal_loss(torch.zeros(1), torch.zeros(1))
    # point_sample is mmcv's pure-torch op: check it against F.grid_sample (independent reference)
    feat = torch.randn(1, 2, 5, 7)
    pts = torch.rand(1, 9, 2)
    ref = F.grid_sample(feat, (2 * pts - 1).unsqueeze(2), align_corners=False).squeeze(3)
    assert torch.allclose(ops.point_sample(feat, pts, align_corners=False), ref, atol=1e-6)
    import mmseg.models  # noqa: F401 - imports under the layer


def test_resume_env_is_set_only_inside_the_block(monkeypatch):
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    import os

    with mmcv_compat.allow_full_checkpoint_load():
        assert os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "1"
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ


def test_shipped_configs_default_to_satdino_small_and_its_normalisation():
    from mmengine.config import Config

    from satbench.models.registry import get_card
    from satbench.seg.config import config_path

    card = get_card("satdino-vit_small-16")
    for ds in ("potsdam", "vaihingen", "loveda"):
        for crop in (224, 512):
            cfg = Config.fromfile(str(config_path(ds, crop)))
            assert cfg.custom_imports.imports == ["satbench.seg"]
            bb = cfg.model.backbone
            assert bb.type == "SatbenchBackbone" and bb.model == card.name
            assert tuple(bb.out_indices) == (3, 5, 7, 11)
            assert cfg.model.decode_head.in_channels == [card.embed_dim] * 4
            pre = cfg.model.data_preprocessor
            assert pre.mean == pytest.approx([m * 255 for m in card.norm.mean])
            assert pre.std == pytest.approx([s * 255 for s in card.norm.std])
            assert pre.bgr_to_rgb is True and pre.size == (crop, crop)


@pytest.mark.parametrize("dataset,num_classes,dtype", [("potsdam", 6, "PotsdamDataset"),
                                                       ("vaihingen", 6, "ISPRSDataset"),
                                                       ("loveda", 7, "LoveDADataset")])
@pytest.mark.parametrize("crop", [224, 512])
def test_every_config_loads_builds_and_reads_the_real_tiles(dataset, num_classes, dtype, crop):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, MODELS

    from satbench.seg.config import build_config

    cfg = build_config(CARD, dataset, crop, weights="random", data_root=FIX / dataset)
    init_default_scope("mmseg")
    assert cfg.train_dataloader.dataset.type == dtype
    assert cfg.model.decode_head.num_classes == num_classes == cfg.model.auxiliary_head.num_classes
    assert cfg.train_dataloader.dataset.pipeline[3] == dict(type="RandomCrop", crop_size=(crop, crop), cat_max_ratio=0.75)
    assert cfg.model.test_cfg.crop_size == (crop, crop) and cfg.model.data_preprocessor.size == (crop, crop)
    assert cfg.model.neck.embed_dim == 192 and cfg.model.decode_head.in_channels == [192] * 4
    assert cfg.param_scheduler[-1]["end"] == 80000 and cfg.train_cfg.max_iters == 80000
    assert cfg.optim_wrapper.optimizer.lr == 6e-5 and cfg.train_dataloader.batch_size == 8
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == "EncoderDecoder"
    ds = DATASETS.build(cfg.val_dataloader.dataset)
    assert len(ds) == 1 and len(ds.metainfo["classes"]) == num_classes
    item = ds[0]
    seg = item["data_samples"].gt_sem_seg.data
    vals = set(seg.unique().tolist())
    assert vals <= set(range(num_classes)) | {255}  # reduce_zero_label: 0 -> 255


def test_build_config_scales_schedule_splits_batch_and_rejects_bad_input(tmp_path):
    from satbench.errors import ProtocolError, SatbenchError, UnknownNameError
    from satbench.seg.config import build_config

    cfg = build_config(CARD, "potsdam", 512, weights="random", iters=8000, total_batch=8, world_size=4)
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.param_scheduler[0]["end"] == 150 and cfg.param_scheduler[1]["begin"] == 150
    assert cfg.param_scheduler[1]["end"] == 8000 and cfg.train_cfg.max_iters == 8000
    with pytest.raises(ProtocolError, match="does not split"):
        build_config(CARD, "potsdam", 512, world_size=3)
    with pytest.raises(ProtocolError, match="crop 300"):
        build_config(CARD, "potsdam", 300)
    with pytest.raises(UnknownNameError, match="did you mean: potsdam"):
        build_config(CARD, "potsdm", 512)
    with pytest.raises(SatbenchError, match="out of range"):
        from satbench.seg.backbone import SatbenchBackbone

        SatbenchBackbone(CARD, weights="random", out_indices=(3, 5, 7, 12))


def test_default_layers_by_depth():
    from satbench.errors import SatbenchError
    from satbench.seg.backbone import default_out_indices

    assert default_out_indices(12) == (3, 5, 7, 11)
    assert default_out_indices(24) == (7, 11, 15, 23)
    with pytest.raises(SatbenchError):
        default_out_indices(6)


def test_layer_decay_constructor_matches_the_beit_formula():
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from satbench.seg.config import build_config

    rate = 0.65
    cfg = build_config(CARD, "potsdam", 224, weights="random", layer_decay=rate)
    init_default_scope("mmseg")
    model = MODELS.build(cfg.model)
    ow = build_optim_wrapper(model, cfg.optim_wrapper)
    base = cfg.optim_wrapper.optimizer.lr
    lr_of, wd_of = {}, {}
    names = {id(p): n for n, p in model.named_parameters()}
    for g in ow.optimizer.param_groups:
        for p in g["params"]:
            lr_of[names[id(p)]] = g["lr"]
            wd_of[names[id(p)]] = g["weight_decay"]
    assert len(lr_of) == len(list(model.parameters()))
    n = 12 + 2  # depth + 2 layer ids
    assert lr_of["backbone.vit.patch_embed.proj.weight"] == pytest.approx(base * rate ** (n - 1))
    assert lr_of["backbone.vit.pos_embed"] == pytest.approx(base * rate ** (n - 1))
    assert lr_of["backbone.vit.blocks.0.attn.qkv.weight"] == pytest.approx(base * rate ** (n - 2))
    assert lr_of["backbone.vit.blocks.11.mlp.fc1.weight"] == pytest.approx(base * rate ** 1)
    assert lr_of["backbone.vit.norm.weight"] == pytest.approx(base)
    assert lr_of["decode_head.conv_seg.weight"] == pytest.approx(base)
    assert wd_of["backbone.vit.blocks.3.attn.qkv.weight"] == 0.01
    assert wd_of["backbone.vit.blocks.3.attn.qkv.bias"] == 0.0
    assert wd_of["backbone.vit.gsd_register"] == 0.0 and wd_of["backbone.vit.cls_token"] == 0.0


def test_seg_config_cli_writes_a_runnable_config(tmp_path, capsys):
    from mmengine.config import Config

    from satbench.cli.app import main

    out = tmp_path / "cfg.py"
    rc = main(["seg-config", "--model", CARD, "--dataset", "loveda", "--crop", "512", "--weights", "random",
               "--gpus", "4", "--data-root", str(FIX / "loveda"), "--out", str(out)])
    assert rc == 0 and out.is_file()
    cfg = Config.fromfile(str(out))
    assert cfg.custom_imports.imports == ["satbench.seg"]
    assert cfg.model.backbone.model == CARD and cfg.model.backbone.weights == "random"
    assert cfg.train_dataloader.batch_size == 2  # total 8 over 4 GPUs
    assert cfg.train_dataloader.dataset.data_root == str(FIX / "loveda")
    assert cfg.model.test_cfg == dict(mode="slide", crop_size=(512, 512), stride=(341, 341))
    rc = main(["seg-config", "--model", CARD, "--dataset", "loveda", "--crop", "512", "--gpus", "3"])
    err = capsys.readouterr().err
    assert rc == 2 and "does not split over 3" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_mmseg_own_train_tool_runs_a_generated_config(tmp_path):
    """`satbench seg-config` output driven by mmseg's bundled tools/train.py (custom_imports installs the shim)."""
    import subprocess
    import sys

    import mmseg

    from satbench.cli.app import main

    cfg = tmp_path / "cfg.py"
    assert main(["seg-config", "--model", CARD, "--dataset", "potsdam", "--crop", "224", "--weights", "random",
                 "--data-root", str(FIX / "potsdam"), "--iters", "2", "--seg-batch", "2",
                 "--work-dir", str(tmp_path / "wd"), "--out", str(cfg)]) == 0
    tool = Path(mmseg.__file__).parent / ".mim" / "tools" / "train.py"
    opts = ["model.decode_head.channels=32", "model.auxiliary_head.channels=16"] + [
        f"{d}.{k}" for d in ("train_dataloader", "val_dataloader", "test_dataloader")
        for k in ("num_workers=0", "persistent_workers=False")]
    out = subprocess.run([sys.executable, str(tool), str(cfg), "--cfg-options", *opts],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "wd" / "iter_2.pth").is_file() and "mIoU" in out.stdout + out.stderr
