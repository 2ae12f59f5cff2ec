"""Kill with SIGKILL at a random step, resume, and end exactly where an uninterrupted run ends: pretraining (teacher
weights and the logged per-iteration losses) and a linear probe (head, backbone, per-epoch metrics in the record)."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from support.paths import CARDS, UCM_MINI
from support.builders import scene_folder

UCM = UCM_MINI


def _tiny_dataset(root: Path, per_class: int = 3) -> Path:
    """A real 4-class dataset in the official layout (per_class train + 1 val image per class)."""
    return scene_folder(root, "uc_merced", ("airplane", "beach", "forest", "harbor"), train=per_class, val=1)


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", SATBENCH_OFFLINE="1", SATBENCH_MODEL_CARDS=str(CARDS),
                PYTHONUNBUFFERED="1")


def _run(argv: list[str], timeout: int = 600) -> None:
    proc = subprocess.run([sys.executable, "-m", "satbench.cli", *argv], capture_output=True, text=True, env=_env(),
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _kill_when(argv: list[str], ready, timeout: float = 300) -> None:
    """Start ``satbench argv``; SIGKILL it as soon as ``ready()`` is true (it must not have finished by then)."""
    proc = subprocess.Popen([sys.executable, "-m", "satbench.cli", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=_env())
    t0 = time.monotonic()
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"run finished before the kill point: {proc.stderr.read()[-2000:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail("kill point never reached")
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


PRETRAIN_SETS = ["depth=1", "batch_size_per_gpu=4", "epochs=4", "warmup_epochs=1", "warmup_teacher_temp_epochs=2",
                 "global_crops_size=32", "local_crops_size=16", "local_crops_number=2", "out_dim=64",
                 "head_hidden_dim=32", "head_bottleneck_dim=16", "saveckp_freq=100", "num_workers=0"]


def test_pretraining_killed_at_a_random_step_resumes_to_the_same_end(tmp_path):
    data = _tiny_dataset(tmp_path) / "train.txt"  # 12 images -> 3 steps per epoch, 12 steps
    base = ["pretrain", "--config", "satdino-demo-tiny", "--data", str(data), "--gsd", "0.3", "--no-progress"]
    base += [a for s in PRETRAIN_SETS for a in ("--set", s)]
    full, killed = tmp_path / "full", tmp_path / "killed"
    _run(base + ["--output", str(full)])
    kill_at = random.Random(os.getpid()).randint(4, 10)  # a step after the first epoch's checkpoint, before the end
    _kill_when(base + ["--output", str(killed)],
               lambda: len(_rows(killed / "log_iter.csv")) >= kill_at and (killed / "checkpoint.pth").is_file())
    assert not (killed / "log_epoch.csv").is_file() or len(_rows(killed / "log_epoch.csv")) < 4
    _run(base + ["--output", str(killed), "--resume"])
    loss_cols = ("it", "loss", "dino_loss", "gsd_loss", "lr", "wd", "teacher_temp", "momentum")
    a = [{k: r[k] for k in loss_cols} for r in _rows(full / "log_iter.csv")]
    b = [{k: r[k] for k in loss_cols} for r in _rows(killed / "log_iter.csv")]
    assert len(a) == 12 and a == b, f"killed at step {kill_at}"
    ta = torch.load(full / "teacher.pth", map_location="cpu", weights_only=True)["teacher"]
    tb = torch.load(killed / "teacher.pth", map_location="cpu", weights_only=True)["teacher"]
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


@pytest.mark.parametrize("task", ["linear", "finetune"])
def test_linear_probe_and_finetune_killed_at_a_random_step_resume_to_the_same_end(tmp_path, task):
    """Fine-tuning trains the backbone too: its tensors (and so the optimizer state of every layer) must match."""
    data = _tiny_dataset(tmp_path, per_class=4)
    base = ["run", "--task", task, "--model", "satdino-test-tiny", "--weights", "random", "--dataset", str(data),
            "--epochs", "5", "--train-batch-size", "4", "--num-workers", "0", "--batch-size", "4", "--no-progress"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    _run(base + ["--output-dir", str(full), "--results-dir", str(tmp_path / "rec_full")])

    def epoch_of(p: Path) -> int:
        try:
            return int(torch.load(p, map_location="cpu", weights_only=False)["epoch"])
        except Exception:
            return -1

    kill_after = random.Random(os.getpid()).randint(1, 3)  # epochs completed before the kill
    _kill_when(base + ["--output-dir", str(killed), "--results-dir", str(tmp_path / "rec_killed")],
               lambda: (killed / "checkpoint.pth").is_file() and epoch_of(killed / "checkpoint.pth") >= kill_after)
    assert not (tmp_path / "rec_killed").exists() or not list((tmp_path / "rec_killed").glob("*.json"))
    _run(base + ["--output-dir", str(killed), "--results-dir", str(tmp_path / "rec_killed"), "--resume"])
    ca = torch.load(full / "checkpoint.pth", map_location="cpu", weights_only=False)
    cb = torch.load(killed / "checkpoint.pth", map_location="cpu", weights_only=False)
    for key in ("linear_head", "teacher"):
        assert all(torch.equal(ca[key][k], cb[key][k]) for k in ca[key]), key
    ra = json.loads(next((tmp_path / "rec_full").glob("*.json")).read_text())
    rb = json.loads(next((tmp_path / "rec_killed").glob("*.json")).read_text())
    strip = lambda hist: [{k: v for k, v in e.items() if "second" not in k and k != "time"} for e in hist]  # noqa: E731
    assert strip(ra["metrics"]["per_epoch"]) == strip(rb["metrics"]["per_epoch"])


def test_segmentation_killed_at_a_random_iteration_resumes_to_the_same_end(tmp_path):
    """UperNet through mmengine: SIGKILL after a random saved iteration, `--resume` (the latest complete checkpoint;
    mmengine's writes are made atomic by satbench), final weights and mIoU equal to an uninterrupted run
    (dropout off so the comparison is exact; mmengine re-seeds and replays the data order on resume)."""
    pytest.importorskip("mmseg")
    from support.seg import CARD, FIX, SMALL

    iters = 6
    opts = SMALL + ["default_hooks.checkpoint.interval=1", "model.decode_head.dropout_ratio=0.0",
                    "model.auxiliary_head.dropout_ratio=0.0"]

    def argv(work: Path, res: Path) -> list[str]:
        return ["run", "--task", "segmentation", "--model", CARD, "--weights", "random", "--dataset", str(FIX / "potsdam"),
                "--crop", "224", "--seg-batch", "2", "--num-workers", "0", "--iters", str(iters), "--work-dir", str(work),
                "--results-dir", str(res), "--no-progress", "--seg-cfg-options", *opts]

    _run(argv(tmp_path / "full", tmp_path / "rec_full"))
    kill_after = random.Random(os.getpid()).randint(1, iters - 2)
    killed = tmp_path / "killed"
    _kill_when(argv(killed, tmp_path / "rec_killed"), lambda: (killed / f"iter_{kill_after}.pth").is_file())
    assert not list((tmp_path / "rec_killed").glob("*.json"))
    for ck in killed.glob("iter_*.pth"):  # every checkpoint under its final name is complete
        torch.load(ck, map_location="cpu", weights_only=False)
    _run(argv(killed, tmp_path / "rec_killed")[:-len(opts) - 1] + ["--resume", "--seg-cfg-options", *opts])
    a = torch.load(tmp_path / "full" / "final_weights.pth", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(killed / "final_weights.pth", map_location="cpu", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:5]
    ra = json.loads(next((tmp_path / "rec_full").glob("*.json")).read_text())
    rb = json.loads(next((tmp_path / "rec_killed").glob("*.json")).read_text())
    assert rb["extra"]["applied"]["resumed"] is True and ra["metrics"] == rb["metrics"]
