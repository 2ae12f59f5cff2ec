"""Segmentation under ``torchrun`` on CPU: mmengine's ``pytorch`` launcher with gloo (slow: 2 processes), and
the CPU-specific adjustments satbench makes (own gloo init, ``device_ids=None``, per-process BN)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from support.seg import CARD, FIX, SMALL  # noqa: E402

pytest.importorskip("mmseg")


def test_cpu_distributed_swaps_syncbn_and_refuses_one_image_per_process():
    from mmengine.config import Config

    from satbench.errors import SatbenchError
    from satbench.seg.runner import _prepare_cpu_distributed, _replace_norm_type

    cfg = Config(dict(model=dict(neck=dict(norm_cfg=dict(type="SyncBN", requires_grad=True)),
                                 decode_head=dict(norm_cfg=dict(type="SyncBN")),
                                 auxiliary_head=[dict(norm_cfg=dict(type="SyncBN")), dict(norm_cfg=dict(type="GN"))]),
                      train_dataloader=dict(batch_size=1)))
    with pytest.raises(SatbenchError, match="at least 2"):
        _prepare_cpu_distributed(cfg)
    assert _replace_norm_type(cfg.model, "SyncBN", "BN") == 3
    assert cfg.model.neck.norm_cfg.type == "BN" and cfg.model.auxiliary_head[1].norm_cfg.type == "GN"


@pytest.mark.slow
def test_two_process_gloo_segmentation_run(tmp_path):
    """2 processes x 2 images: one record (rank 0 only), world size and the CPU adjustments recorded, and the
    record's mIoU (gathered from both ranks by mmengine) equal to a single-process evaluation of the final weights."""
    from satbench.seg.predict import load_segmentor, predict, read_label

    wd, res = tmp_path / "work", tmp_path / "results"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "satbench.cli",
           "run", "--task", "segmentation", "--model", CARD, "--weights", "random", "--dataset", str(FIX / "potsdam"),
           "--crop", "224", "--seg-batch", "4", "--num-workers", "0", "--iters", "2", "--work-dir", str(wd),
           "--results-dir", str(res), "--no-progress", "--seg-cfg-options", *SMALL]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = sorted(res.glob("*.json"))
    assert len(records) == 1
    rec = json.loads(records[0].read_text())
    p = rec["extra"]["applied"]
    assert p["world_size"] == 2 and p["batch_per_process"] == 2 and p["total_batch"] == 4
    assert p["cpu_distributed"]["backend"] == "gloo" and p["cpu_distributed"]["syncbn_replaced"] >= 3
    from mmengine.config import Config

    written = Config.fromfile(wd / "satbench_seg_config.py").model
    assert written.neck.norm_cfg.type == written.decode_head.norm_cfg.type == "BN"
    assert len(rec["extra"]["train_loss"]) == 2

    model = load_segmentor(wd / "satbench_seg_config.py", wd / "final_weights.pth")
    tiles = sorted((FIX / "potsdam" / "img_dir" / "val").glob("*.png"))
    inter, union = np.zeros(6), np.zeros(6)
    for tile, pred in zip(tiles, predict(model, tiles)):
        gt = read_label(FIX / "potsdam" / "ann_dir" / "val" / tile.name)
        valid = gt != 255
        for c in range(6):
            inter[c] += ((pred == c) & (gt == c) & valid).sum()
            union[c] += (((pred == c) | (gt == c)) & valid).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        ref = round(float(np.nanmean(inter / union)) * 100, 2)
    assert rec["metrics"]["mIoU"] == pytest.approx(ref, abs=0.011)
