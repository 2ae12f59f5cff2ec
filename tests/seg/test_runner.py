"""Training through mmengine's Runner on the real fixture tiles: CLI run, record, resume, predictions,
an independent mIoU, the loss going down, overlays. Tiny model (vit_tiny/16, random init), 64 px crops."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
import torch
from support.seg import CARD, FIX, SMALL

pytest.importorskip("mmseg")

pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`satbench run --task segmentation` for 2 iterations (checkpoint at 2), then resume to 4."""
    from satbench.cli.app import main

    base = tmp_path_factory.mktemp("segrun")
    wd, res = base / "work", base / "results"
    common = ["run", "--task", "segmentation", "--model", CARD, "--weights", "random", "--dataset",
              str(FIX / "potsdam"), "--crop", "224", "--seg-batch", "2", "--num-workers", "0", "--work-dir", str(wd),
              "--results-dir", str(res), "--no-progress", "--seg-cfg-options", *SMALL]
    assert main(common + ["--iters", "2"]) == 0
    first = sorted(res.glob("*.json"))
    assert len(first) == 1
    os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    assert main(common + ["--iters", "4", "--resume"]) == 0
    assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ  # only set around the resume
    records = [json.loads(p.read_text()) for p in sorted(res.glob("*.json"))]
    records.sort(key=lambda r: r["extra"]["final_iter"])
    return wd, records


def test_cli_run_writes_a_segmentation_record(trained):
    wd, (rec, resumed) = trained
    assert rec["task"] == "segmentation" and rec["model"] == "seg-test-vit_tiny-16"
    assert rec["summary"]["crop"] == 224 and 0 <= rec["summary"]["mIoU"] <= 100
    assert rec["summary"]["mIoU"] == rec["metrics"]["mIoU"] and rec["metrics"]["units"] == "percent"
    assert rec["metrics"]["mFscore"] is not None
    assert set(rec["metrics"]["per_class"]["IoU"]) == {"impervious_surface", "building", "low_vegetation",
                                                       "tree", "car", "clutter"}
    assert rec["dataset"]["name"] == "potsdam" and rec["dataset"]["counts"] == {"train": 3, "val": 1}
    p = rec["extra"]["applied"]
    assert p["iters"] == 2 and p["total_batch"] == 2 and p["frozen"] is False and p["out_indices"] == [3, 5, 7, 11]
    assert rec["protocol"]["name"] == "upernet-v1" and rec["protocol"]["overrides"]["iters"] == 2  # the recipe, hashed
    assert rec["protocol"]["content"]["params"]["iters"] == 2 and rec["dataset"]["train_equals_val"] is False
    assert rec["weights"]["source"] == "random" and rec["extractor"]["normalization"]["name"] == "fmow"
    assert rec["extractor"]["input"]["text"].startswith("[0, 255] then fmow mean/std x 255 -> [")
    assert len(rec["extra"]["train_loss"]) == 2
    assert (wd / "final_weights.pth").is_file() and (wd / "satbench_seg_config.py").is_file()


def test_resume_continues_from_the_checkpoint(trained):
    wd, (rec, resumed) = trained
    assert resumed["extra"]["applied"]["resumed"] is True and resumed["extra"]["final_iter"] == 4
    assert len(resumed["extra"]["train_loss"]) == 2  # iterations 3 and 4 only: 1 and 2 were restored
    ckpt = torch.load(wd / "iter_4.pth", map_location="cpu", weights_only=False)  # test-written, trusted
    steps = {float(s["step"]) for s in ckpt["optimizer"]["state"].values()}
    assert steps == {4.0}  # AdamW state carried over: 2 steps before + 2 after the resume


def test_predictions_shape_class_range_and_independent_miou(trained):
    """Predict the val tile with the final weights; mIoU from a numpy confusion matrix must equal the record's."""
    from satbench.seg.predict import load_segmentor, predict, read_label

    wd, (_, resumed) = trained
    model = load_segmentor(wd / "satbench_seg_config.py", wd / "final_weights.pth")
    tiles = sorted((FIX / "potsdam" / "img_dir" / "val").glob("*.png"))
    preds = predict(model, tiles)
    n = 6
    inter = np.zeros(n)
    union = np.zeros(n)
    for tile, pred in zip(tiles, preds):
        gt = read_label(FIX / "potsdam" / "ann_dir" / "val" / tile.name)
        assert pred.shape == gt.shape == (128, 128)
        assert pred.min() >= 0 and pred.max() < n
        valid = gt != 255
        for c in range(n):
            p, g = (pred == c) & valid, (gt == c) & valid
            inter[c] += (p & g).sum()
            union[c] += (p | g).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = inter / union
    ref = round(float(np.nanmean(iou)) * 100, 2)
    assert resumed["metrics"]["mIoU"] == pytest.approx(ref, abs=0.011)


def test_predict_refuses_full_pickles_without_trust(trained):
    from satbench.errors import WeightsError
    from satbench.seg.predict import load_segmentor

    wd, _ = trained
    with pytest.raises(WeightsError, match="trust-checkpoint"):
        load_segmentor(wd / "satbench_seg_config.py", wd / "iter_4.pth")
    model = load_segmentor(wd / "satbench_seg_config.py", wd / "iter_4.pth", trust_checkpoint=True)
    assert model.dataset_meta["classes"][0] == "impervious_surface"


def test_seg_predict_cli_writes_overlay_pngs(trained, tmp_path):
    from PIL import Image

    from satbench.cli.app import main

    wd, _ = trained
    out = tmp_path / "png"
    rc = main(["seg-predict", "--work-dir", str(wd), "--images", str(FIX / "potsdam" / "img_dir" / "train"),
               "--ann-dir", str(FIX / "potsdam" / "ann_dir" / "train"), "--limit", "2", "--out", str(out)])
    assert rc == 0
    pngs = sorted(out.glob("*_overlay.png"))
    assert len(pngs) == 2
    im = Image.open(pngs[0])
    assert im.format == "PNG" and im.size[0] > 3 * 128  # three panels


def test_loss_goes_down_on_a_fixed_batch():
    """A few AdamW steps on two real tiles (no augmentation): the UperNet loss must fall."""
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATASETS, MODELS

    from satbench.seg.config import build_config
    from satbench.eval.task_segmentation import parse_cfg_options

    torch.manual_seed(0)
    cfg = build_config(CARD, "vaihingen", 224, weights="random", data_root=FIX / "vaihingen",
                       cfg_options={**parse_cfg_options(SMALL), "optim_wrapper.optimizer.lr": 1e-3,
                                    "model.decode_head.dropout_ratio": 0.0, "model.auxiliary_head.dropout_ratio": 0.0})
    init_default_scope("mmseg")
    model = MODELS.build(cfg.model)
    model.train()
    ds_cfg = cfg.train_dataloader.dataset.copy()
    ds_cfg.pipeline = [dict(type="LoadImageFromFile"), dict(type="LoadAnnotations", reduce_zero_label=True),
                       dict(type="Resize", scale=(64, 64)), dict(type="PackSegInputs")]
    ds = DATASETS.build(ds_cfg)
    batch = pseudo_collate([ds[0], ds[1]])
    ow = build_optim_wrapper(model, cfg.optim_wrapper)
    losses = []
    for _ in range(8):
        out = model.train_step(batch, ow)
        losses.append(float(sum(v.detach() for k, v in out.items() if "loss" in k)))
    assert all(b < a for a, b in zip(losses, losses[1:])), losses
    assert losses[-1] < 0.85 * losses[0], losses


def test_run_errors_are_one_line(tmp_path, capsys):
    from satbench.cli.app import main

    rc = main(["run", "--task", "segmentation", "--model", CARD, "--weights", "random", "--dataset", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "--seg-format" in err and len(err.strip().splitlines()) == 1
    rc = main(["run", "--task", "segmentation", "--model", CARD, "--weights", "random", "--dataset", str(tmp_path),
               "--seg-format", "loveda"])
    err = capsys.readouterr().err
    assert rc == 2 and "img_dir" in err and len(err.strip().splitlines()) == 1


def test_mmengine_checkpoint_writes_are_atomic(tmp_path, monkeypatch):
    """satbench.seg makes mmengine's LocalBackend.put atomic: a save that fails midway leaves no file under the name."""
    import errno

    import satbench.io.atomic as sio
    import satbench.seg  # noqa: F401  (installs the patch)
    from mmengine.runner.checkpoint import save_checkpoint

    target = tmp_path / "work" / "iter_2.pth"
    save_checkpoint({"meta": {"iter": 2}, "state_dict": {"w": torch.ones(3)}}, str(target))
    assert torch.load(target, weights_only=True)["meta"]["iter"] == 2

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sio.os, "fsync", no_space)
    with pytest.raises(Exception, match="(?i)no space left"):
        save_checkpoint({"meta": {"iter": 4}}, str(tmp_path / "work" / "iter_4.pth"))
    assert not (tmp_path / "work" / "iter_4.pth").exists()
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == ["iter_2.pth"]  # no temp file left either


def test_mmengine_last_checkpoint_pointer_write_is_atomic(tmp_path, monkeypatch):
    """The pointer mmengine writes after each checkpoint goes through satbench's atomic write: a kill or a failure
    while writing it keeps the previous pointer, never an empty file that --resume would refuse (a CI failure)."""
    import errno
    import inspect

    import satbench.io.atomic as sio
    import satbench.seg  # noqa: F401  (installs the patch)
    from mmengine.hooks import checkpoint_hook

    source = inspect.getsource(checkpoint_hook.CheckpointHook._save_checkpoint_with_step)
    assert "open(save_file, 'w')" in source  # the write the patch covers is still how mmengine writes the pointer
    pointer = tmp_path / "last_checkpoint"
    with checkpoint_hook.open(str(pointer), "w") as f:
        f.write(str(tmp_path / "iter_1.pth"))
    assert pointer.read_text() == str(tmp_path / "iter_1.pth")

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sio.os, "fsync", no_space)
    with pytest.raises(Exception, match="(?i)no space left"):
        with checkpoint_hook.open(str(pointer), "w") as f:
            f.write(str(tmp_path / "iter_2.pth"))
    assert pointer.read_text() == str(tmp_path / "iter_1.pth")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint"]
    with checkpoint_hook.open(str(tmp_path / "other.txt"), "w") as f:  # any other file: the builtin open
        assert not isinstance(f, io.StringIO)
