"""CUDA paths (``pytest -m gpu``; skipped without a GPU, never part of CI): features on the GPU in fp32 and bf16,
kNN with the torch backend on the GPU against the CPU, pretraining steps in the paper's fp16 (GradScaler) and in
bf16, a 1-process nccl torchrun, and segmentation with mmengine's AmpOptimWrapper (bf16)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from support.paths import REPO

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CARDS = REPO / "tests" / "fixtures" / "cards"


@pytest.fixture(autouse=True)
def _test_cards(monkeypatch):
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))


def _batch(ucm_mini, n: int = 16, size: int = 224) -> torch.Tensor:
    from PIL import Image

    imgs = [Image.open(s.path).convert("RGB").resize((size, size)) for s in ucm_mini.samples("val")[:n]]
    return torch.stack([torch.from_numpy(np.asarray(i)).permute(2, 0, 1) for i in imgs])


def test_features_on_gpu_match_cpu_and_bf16_is_close(ucm_mini):
    from satbench.models.features import FeatureExtractor
    from satbench.models.registry import get_card
    from satbench.models.weights import load_model

    x = _batch(ucm_mini)
    loaded = load_model(get_card("satdino-vit_small-16"), "random", seed=0)
    cpu = FeatureExtractor(loaded, device="cpu")(x).cls
    loaded = load_model(get_card("satdino-vit_small-16"), "random", seed=0)
    gpu = FeatureExtractor(loaded, device="cuda")(x.cuda()).cls.cpu()
    torch.testing.assert_close(gpu, cpu, atol=2e-3, rtol=2e-3)  # TF32 off by default in torch: fp32 matmuls
    bf = FeatureExtractor(loaded, device="cuda", bf16=True)
    assert bf.describe()["bf16"] is True
    b = bf(x.cuda()).cls.cpu()
    cos = torch.nn.functional.cosine_similarity(b, cpu, dim=-1)
    assert b.dtype == torch.float32 and cos.min() > 0.99, cos


def test_knn_on_gpu_uses_torch_topk_and_matches_cpu(ucm_mini):
    from satbench.eval.task_knn import run_knn
    from satbench.config.protocols import load_protocol
    from satbench.models.registry import get_card
    from satbench.models.weights import load_model

    proto = load_protocol("satdino-knn-v1", task="knn").with_overrides(scales=[0.25, 0.125])
    recs = {}
    for dev in ("cpu", "cuda"):
        loaded = load_model(get_card("satdino-test-tiny"), "random", seed=0)
        recs[dev] = run_knn(loaded, ucm_mini, proto, device=dev, backend="torch", progress=False, num_workers=0)
    assert recs["cuda"]["extra"]["backend"] == "torch" and recs["cuda"]["extractor"]["device"].startswith("cuda")
    a, b = recs["cpu"]["summary"], recs["cuda"]["summary"]
    assert abs(a["top1_avg"] - b["top1_avg"]) <= 100 / 84 + 1e-6  # at most one val image may flip on a near-tie


def _tiny_csv(ucm_mini, tmp_path: Path) -> Path:
    p = tmp_path / "imgs.csv"
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_path", "gsd"])
        for s in ucm_mini.samples("train")[::21][:16]:
            w.writerow([str(s.path), 0.3])
    return p


TINY = ["arch=vit_tiny", "depth=2", "out_dim=256", "head_hidden_dim=64", "head_bottleneck_dim=32",
        "global_crops_size=64", "local_crops_size=32", "batch_size_per_gpu=8", "epochs=2", "warmup_epochs=1",
        "warmup_teacher_temp_epochs=2", "num_workers=0", "saveckp_freq=1"]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_pretraining_steps_on_gpu(precision, ucm_mini, tmp_path):
    """The paper's fp16 (GradScaler on CUDA) and bf16 autocast: finite losses, scaler state saved (fp16), resume."""
    from satbench.pretrain.config import load_config
    from satbench.pretrain.data import open_pretrain_source
    from satbench.pretrain.trainer import Trainer

    proto = load_config("satdino-demo-tiny", TINY + [f"precision={precision}"])
    src = _tiny_csv(ucm_mini, tmp_path)
    t = Trainer(proto, open_pretrain_source(str(src), data_root="/"), tmp_path / "run", progress=False)
    assert t.ctx.device.type == "cuda"
    t.train(stop_after_epoch=1)
    ck = torch.load(tmp_path / "run" / "checkpoint.pth", weights_only=True)
    assert (ck["fp16_scaler"] is not None) == (precision == "fp16")
    r = Trainer(proto, open_pretrain_source(str(src), data_root="/"), tmp_path / "run", progress=False)
    assert r.resume() == 1
    r.train()
    with open(tmp_path / "run" / "log_iter.csv") as fh:
        losses = [float(row["loss"]) for row in csv.DictReader(fh)]
    assert len(losses) == 4 and all(np.isfinite(losses))


def test_torchrun_nccl_one_process_pretrains(ucm_mini, tmp_path):
    src = _tiny_csv(ucm_mini, tmp_path)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m", "satbench.cli",
           "pretrain", "--config", "satdino-demo-tiny", "--data", str(src), "--data-root", "/", "--output",
           str(tmp_path / "ddp"), "--no-progress"] + [a for s in TINY + ["precision=fp16"] for a in ("--set", s)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))})
    assert r.returncode == 0, r.stderr[-3000:]
    ck = torch.load(tmp_path / "ddp" / "checkpoint.pth", weights_only=True)
    assert ck["meta"]["world_size"] == 1 and ck["epoch"] == 2


def test_segmentation_bf16_amp_on_gpu(tmp_path):
    pytest.importorskip("mmseg")
    from satbench.cli.app import main

    fix = REPO / "tests" / "fixtures" / "seg"
    small = ["model.data_preprocessor.size=(64,64)", "model.test_cfg.crop_size=(64,64)", "model.test_cfg.stride=(43,43)",
             "model.decode_head.channels=32", "model.auxiliary_head.channels=16",
             "train_dataloader.dataset.pipeline.2.scale=(128,128)", "train_dataloader.dataset.pipeline.3.crop_size=(64,64)",
             "val_dataloader.dataset.pipeline.1.scale=(128,128)", "test_dataloader.dataset.pipeline.1.scale=(128,128)",
             "test_pipeline.1.scale=(128,128)", "log_level='WARNING'"]
    rc = main(["run", "--task", "segmentation", "--model", str(fix / "cards" / "seg-test-vit_tiny-16.yaml"), "--weights",
               "random", "--dataset", str(fix / "potsdam"), "--crop", "224", "--seg-batch", "2", "--num-workers", "0",
               "--iters", "2", "--bf16", "--work-dir", str(tmp_path / "w"), "--results-dir", str(tmp_path / "r"),
               "--no-progress", "--seg-cfg-options", *small])
    assert rc == 0
    rec = json.loads(next((tmp_path / "r").glob("*.json")).read_text())
    assert rec["extra"]["applied"]["optim_wrapper"] == "AmpOptimWrapper" and rec["extractor"]["bf16"] is True
    assert "H100" in json.dumps(rec["provenance"]) or "cuda" in json.dumps(rec["provenance"]).lower()
    assert all(np.isfinite(rec["extra"]["train_loss"]))
