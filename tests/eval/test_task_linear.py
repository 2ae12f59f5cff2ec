"""``satbench run --task linear`` on fMoW CSVs, and (slow) 2-process gloo ``torchrun`` against 1 process."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from satbench.cli.app import main
from satbench.config.protocols import load_protocol


pytestmark = pytest.mark.usefixtures("one_thread")


def _write_fmow(tmp_path: Path, ucm_mini) -> tuple[Path, Path, Path]:
    """Two tiny fMoW CSVs in the official column layout, images laid out as the baseline's 7-component paths."""
    from satbench.data.fmow import FMOW_CATEGORIES

    root = tmp_path / "fmow"
    cats = ["airport", "crop_field", "zoo"]
    files = {}
    for split, n in (("train", 3), ("val", 1)):
        rows = []
        for ci, cat in enumerate(cats):
            for j in range(n):
                src = ucm_mini.samples(split)[ci * 16 // (1 if split == "train" else 4) + j].path
                rel = f"input/train_data/{split}/{cat}/{cat}_{j}/{cat}_{j}_{j}/{cat}_{j}_0_rgb.jpg"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, root / rel)
                rows.append({"id": f"{cat}/{cat}_{j}", "image_path": rel, "feature_path": rel.replace(".jpg", ".json"),
                             "split": split, "category_name": cat, "category_idx": FMOW_CATEGORIES.index(cat),
                             "gsd": 0.5, "hour": 10, "month": 6, "year": 2015})
        path = tmp_path / f"{split}.csv"
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        files[split] = path
    return files["train"], files["val"], root


def test_linear_on_fmow_csvs(tmp_path, ucm_mini, capsys):
    train_csv, val_csv, root = _write_fmow(tmp_path, ucm_mini)
    proto = yaml.safe_load(open(load_protocol("satdino-linear-v1").path))
    proto["params"].update(train_crop=32, val_resize=36, val_crop=32, batch_size=4, epochs=1, lr=0.1)
    ppath = tmp_path / "satdino-linear-v1.yaml"
    ppath.write_text(yaml.safe_dump(proto))
    base = ["run", "--task", "linear", "--protocol", str(ppath), "--model", "satdino-vit_small-16", "--weights",
            "random", "--dataset", "fmow", "--no-progress", "--num-workers", "0", "--device", "cpu",
            "--results-dir", str(tmp_path / "res")]
    assert main(base + ["--train-csv", str(train_csv), "--val-csv", str(val_csv), "--data-root", str(root),
                        "--output-dir", str(tmp_path / "out")]) == 0
    rec = json.loads(next((tmp_path / "res").glob("*.json")).read_text())
    assert rec["dataset"]["name"] == "fmow" and rec["dataset"]["num_classes"] == 63
    assert rec["dataset"]["n_train"] == 9 and rec["dataset"]["n_val"] == 3
    assert rec["extractor"]["input"]["text"].startswith("[0, 1] then fmow mean/std -> [")  # the range it saw
    ck = torch.load(tmp_path / "out" / "checkpoint.pth", weights_only=False)
    assert tuple(ck["linear_head"]["linear.weight"].shape) == (63, 384)
    # calibration of the best epoch's softmax: in the record, recomputable from the sidecar, kept in the checkpoint
    from satbench.records.predictions import predictions_for_record
    from satbench.stats.calibration import calibration_errors

    out = capsys.readouterr().out
    cal = rec["summary"]["calibration"]
    preds = predictions_for_record(next((tmp_path / "res").glob("*.json")))
    assert calibration_errors(preds.conf["top1"], preds.correct("top1")) == pytest.approx(
        {k: cal[k] for k in ("ece", "rms", "mce")}, abs=1e-9)
    assert ck["best_predictions"]["conf"].numpy().tolist() == preds.conf["top1"].tolist()
    assert "trained on the whole train split" in rec["metrics"]["calibration"]["temperature_scaling"]["reason"]
    assert any(ln.startswith("calibration: ECE ") for ln in out.splitlines())
    capsys.readouterr()
    assert main(base + ["--val-csv", str(val_csv), "--data-root", str(root)]) == 2  # no --train-csv
    assert "--train-csv" in capsys.readouterr().err
    assert main(base + ["--train-csv", str(train_csv), "--val-csv", str(val_csv)]) == 2  # no --data-root
    assert "--data-root" in capsys.readouterr().err


DDP_SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from satbench.models.backbones.satdino import SatDINOViT
    from satbench.models.registry import ModelCard
    from satbench.models.weights import LoadedModel, WeightsInfo
    from satbench.models.features import FeatureExtractor
    from satbench.data.scene import open_scene_dataset
    from satbench.config.protocols import load_protocol
    from satbench.runtime.distributed import init_distributed, shutdown
    from satbench.eval.linear import train_classifier

    mode, batch, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    info = init_distributed(torch.device("cpu"))
    torch.manual_seed(0)
    model = SatDINOViT(patch_size=16, embed_dim=64, depth=2, num_heads=2)
    card = ModelCard(name="tiny", family="satdino", patch_size=16, embed_dim=64, depth=2, feature_dim=64,
                     normalization="fmow", arch="vit_tiny")
    ex = FeatureExtractor(LoadedModel(model, card, WeightsInfo("random", kind="random", seed=0)), device="cpu")
    ds = open_scene_dataset("ucm-mini")
    train = [s for s in ds.samples("train") if s.label < 4][:32]
    val = [s for s in ds.samples("val") if s.label < 4]
    name = "satdino-linear-v1" if mode == "head" else "satdino-finetune-v1"
    p = load_protocol(name).with_overrides(epochs=2, lr=0.05, batch_size=batch, train_crop=32, val_resize=36,
                                           val_crop=32)
    res = train_classifier(ex, train, val, 21, p, info=info, progress=False, seed=3)
    if info.is_main:
        torch.save({"history": res.history, "head": res.head, "lr": res.effective_lr}, out)
    shutdown(info)
""")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["head", "full"])
def test_two_process_gloo_agrees_with_one_process(tmp_path, mode):
    script = tmp_path / "ddp_run.py"
    script.write_text(DDP_SCRIPT)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    outs = {}
    for nproc, batch in ((1, 8), (2, 4)):
        out = tmp_path / f"r{nproc}.pt"
        subprocess.run(torchrun + [f"--nproc_per_node={nproc}", str(script), mode, str(batch), str(out)], check=True,
                       env=env, timeout=600, capture_output=True)
        outs[nproc] = torch.load(out, weights_only=False)
    a, b = outs[1], outs[2]
    assert a["lr"] == b["lr"]  # batch 8 x 1 == batch 4 x 2
    for ha, hb in zip(a["history"], b["history"]):
        assert ha["n_val"] == hb["n_val"] == 16
        assert ha["train_loss"] == pytest.approx(hb["train_loss"], rel=1e-4)
        assert ha["val_loss"] == pytest.approx(hb["val_loss"], rel=1e-4)
        assert ha["acc1"] == hb["acc1"]
    for k in a["head"]:
        assert torch.allclose(a["head"][k], b["head"][k], atol=1e-5), k
