"""The training loop end to end on real bundled images: resume reproduces the losses, the teacher export
loads strictly, configs are validated (spec 2.1, 2.7)."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from satbench.errors import ProtocolError, SatbenchError, WeightsError
from satbench.pretrain.checkpoint import TEACHER, backbone_state, export_teacher
from satbench.pretrain.config import load_config, resolved
from satbench.pretrain.data import open_pretrain_source
from satbench.pretrain.evaluate import card_for_config
from satbench.pretrain.head import DINOHead, MultiCropWrapper
from satbench.pretrain.trainer import Trainer, build_backbone
from satbench.models.registry import get_card
from satbench.models.weights import load_model, read_checkpoint
from support.paths import REPO

TINY = ["arch=vit_tiny", "depth=2", "out_dim=256", "head_hidden_dim=64", "head_bottleneck_dim=32",
        "global_crops_size=32", "local_crops_size=16", "batch_size_per_gpu=4", "epochs=2", "warmup_epochs=1",
        "warmup_teacher_temp_epochs=2", "num_workers=0", "precision=fp32", "saveckp_freq=1"]


@pytest.fixture
def tiny_csv(ucm_mini, tmp_path):
    """8 real ucm-mini images with a per-image GSD column."""
    p = tmp_path / "imgs.csv"
    samples = ucm_mini.samples("train")[::42][:8]
    with open(p, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_path", "gsd"])
        for i, s in enumerate(samples):
            w.writerow([str(s.path), 0.3 + 0.1 * (i % 3)])
    return p


def _losses(out: Path) -> list[tuple[str, ...]]:
    with open(out / "log_iter.csv") as fh:
        return [(r["epoch"], r["it"], r["loss"], r["dino_loss"], r["gsd_loss"], r["lr"]) for r in csv.DictReader(fh)]


def test_resume_after_interruption_reproduces_the_uninterrupted_losses(tiny_csv, tmp_path):
    proto = load_config("satdino-demo-tiny", TINY)
    full = Trainer(proto, open_pretrain_source(str(tiny_csv), data_root="/"), tmp_path / "full", progress=False)
    full.train()
    a = _losses(tmp_path / "full")
    assert len(a) == 4  # 8 images / batch 4 = 2 steps x 2 epochs

    part = Trainer(proto, open_pretrain_source(str(tiny_csv), data_root="/"), tmp_path / "part", progress=False)
    part.train(stop_after_epoch=1)
    assert len(_losses(tmp_path / "part")) == 2
    del part
    resumed = Trainer(proto, open_pretrain_source(str(tiny_csv), data_root="/"), tmp_path / "part", progress=False)
    assert resumed.resume() == 1
    resumed.train()
    b = _losses(tmp_path / "part")
    assert a == b  # bit-identical loss sequence (exact strings)
    ck = torch.load(tmp_path / "part" / "checkpoint.pth", weights_only=True)
    assert ck["epoch"] == 2 and ck["gsd_head_mode"] == "frozen-random" and ck["config"]["depth"] == 2
    assert (tmp_path / "part" / "checkpoint0001.pth").is_file()
    # teacher weights identical too
    t_full = torch.load(tmp_path / "full" / TEACHER, weights_only=True)["teacher"]
    t_part = torch.load(tmp_path / "part" / TEACHER, weights_only=True)["teacher"]
    assert all(torch.equal(t_full[k], t_part[k]) for k in t_full)

    # exported teacher loads strictly through the weights loader, with a card for the reduced depth
    cfg = resolved(proto)
    loaded = load_model(card_for_config(cfg), str(tmp_path / "full" / TEACHER))
    assert loaded.model.depth == 2 and len(t_full) == 3 + 2 + 12 * 2 + 2
    # the frozen random GSD read-out was not optimised
    g = torch.load(tmp_path / "full" / "checkpoint.pth", weights_only=True)["gsd_head"]
    torch.manual_seed(0)
    assert g["linear.weight"].shape == (1, 192)

    # a resume with another config is refused
    other = load_config("satdino-demo-tiny", TINY + ["lr=0.002"])
    t3 = Trainer(other, open_pretrain_source(str(tiny_csv), data_root="/"), tmp_path / "part", progress=False)
    with pytest.raises(SatbenchError, match="differs in: lr"):
        t3.resume()


def test_trained_gsd_head_changes_and_frozen_does_not(tiny_csv, tmp_path):
    def run(mode):
        proto = load_config("satdino-demo-tiny", TINY + ["epochs=1", "warmup_epochs=0", "warmup_teacher_temp_epochs=1",
                                                         f"gsd_head={mode}"])
        t = Trainer(proto, open_pretrain_source(str(tiny_csv), data_root="/"), tmp_path / mode, progress=False)
        w0 = t.gsd_head.linear.weight.detach().clone()
        t.train()
        return w0, t.gsd_head.linear.weight.detach()

    w0, w1 = run("frozen-random")
    assert torch.equal(w0, w1)
    w0, w1 = run("trained")
    assert not torch.equal(w0, w1)


def test_exported_teacher_is_the_official_format_and_loads_strictly(tmp_path):
    cfg = resolved(load_config("satdino-vit_small-16"))
    torch.manual_seed(0)
    wrapper = MultiCropWrapper(build_backbone(cfg, 0.0), DINOHead(384, 64, hidden_dim=32, bottleneck_dim=16))
    path = export_teacher(wrapper.state_dict(), tmp_path, {"config": cfg})
    obj = read_checkpoint(path)
    assert len(obj["teacher"]) == 151
    assert not any(k.startswith(("backbone.", "head.", "module.")) for k in obj["teacher"])
    assert obj["teacher"]["pos_embed"].shape == (1, 198, 384)
    card = get_card("satdino-vit_small-16")
    assert card_for_config(cfg) is card
    loaded = load_model(card, str(path))
    x = torch.rand(1, 3, 224, 224)
    torch.testing.assert_close(loaded.model(x), wrapper.backbone.eval()(x))
    # the official loader's view: ckpt['teacher'] with strict=True into a default vit_small
    from satbench.models.backbones.satdino import vit_small

    vit_small(patch_size=16).load_state_dict(obj["teacher"], strict=True)
    assert backbone_state({"module.backbone.x": torch.zeros(1), "module.head.y": torch.zeros(1)}) == {"x": torch.zeros(1)}


def test_paper_configs_pin_the_released_values():
    c = resolved(load_config("satdino-vit_small-16"))
    assert (c["arch"], c["patch_size"], c["epochs"], c["warmup_epochs"], c["lr"], c["min_lr"]) == \
        ("vit_small", 16, 200, 10, 0.001, 2e-5)
    assert (c["weight_decay"], c["weight_decay_end"], c["clip_grad"], c["freeze_last_layer"]) == (0.04, 0.4, 0.0, 1)
    assert (c["out_dim"], c["head_hidden_dim"], c["head_bottleneck_dim"], c["norm_last_layer"]) == (65536, 2048, 256, False)
    assert (c["momentum_teacher"], c["warmup_teacher_temp"], c["teacher_temp"], c["warmup_teacher_temp_epochs"]) == \
        (0.996, 0.04, 0.07, 30)
    assert (c["global_crops_scale"], c["local_crops_scale"], c["local_crops_number"]) == ([0.25, 1.0], [0.05, 0.25], 10)
    assert (c["global_crops_size"], c["local_crops_size"], c["augmentation_type"], c["normalization"]) == \
        (224, 96, "satdino", "fmow")
    assert (c["gsd_loss"], c["gsd_weight"], c["gsd_head"], c["precision"], c["drop_path_rate"]) == \
        ("mse", 0.1, "frozen-random", "fp16", 0.1)
    assert (c["batch_size_per_gpu"], c["seed"], c["saveckp_freq"], c["temporal_dataset"]) == (64, 0, 25, False)
    assert resolved(load_config("satdino-vit_small-8"))["patch_size"] == 8
    assert resolved(load_config("satdino-vit_base-16"))["arch"] == "vit_base"


def test_overrides_are_typed_and_unknown_keys_fail():
    p = load_config("satdino-demo-tiny", ["lr=1e-3", "global_crops_scale=[0.4, 1]", "gsd_loss=null",
                                          "augmentation_type=dino"])
    c = resolved(p)
    assert c["lr"] == 0.001 and c["global_crops_scale"] == [0.4, 1.0] and c["gsd_loss"] is None
    assert p.overrides["gsd_loss"] is None and p.hash != load_config("satdino-demo-tiny").hash
    with pytest.raises(ProtocolError, match="unknown pretraining key"):
        load_config("satdino-demo-tiny", ["epoch=3"])
    with pytest.raises(ProtocolError, match="epochs must be int"):
        load_config("satdino-demo-tiny", ["epochs=abc"])
    with pytest.raises(ProtocolError, match="precision must be one of"):
        load_config("satdino-demo-tiny", ["precision=fp8"])
    with pytest.raises(ProtocolError, match="set gsd_loss: null"):
        load_config("satdino-demo-tiny", ["augmentation_type=dino"])
    with pytest.raises(ProtocolError, match="expected key=value"):
        load_config("satdino-demo-tiny", ["epochs"])


def test_fp16_on_cpu_is_refused(ucm_mini, tmp_path):
    with pytest.raises(SatbenchError, match="needs a CUDA device"):
        Trainer(load_config("satdino-vit_small-16"), open_pretrain_source("ucm-mini", gsd=0.3), tmp_path, progress=False)


def test_fp16_with_grad_scaler_resumes_exactly(tiny_csv, tmp_path):
    """The paper's fp16 path (float16 autocast + GradScaler), emulated on the CPU: the scaler's state is saved in
    every checkpoint and restored by resume, which continues the uninterrupted run's losses exactly."""
    proto = load_config("satdino-demo-tiny", TINY + ["precision=fp16"])

    def trainer(out):
        return Trainer(proto, open_pretrain_source(str(tiny_csv), data_root="/"), tmp_path / out, progress=False,
                       allow_cpu_fp16=True)

    full = trainer("full")
    assert full.scaler is not None and full._autocast().fast_dtype == torch.float16
    full.train()
    part = trainer("part")
    part.train(stop_after_epoch=1)
    ck1 = torch.load(tmp_path / "part" / "checkpoint.pth", weights_only=True)
    fresh = torch.amp.GradScaler("cpu").state_dict()
    saved = ck1["fp16_scaler"]
    # the scaler acted (2 steps: a backoff after an fp16 overflow, or a growth-tracker count)
    assert (saved["scale"], saved["_growth_tracker"]) != (fresh["scale"], 0)
    resumed = trainer("part")
    assert resumed.resume() == 1
    assert resumed.scaler.state_dict() == saved  # restored, not a fresh scaler
    resumed.train()
    assert _losses(tmp_path / "full") == _losses(tmp_path / "part")
    a = torch.load(tmp_path / "full" / "checkpoint.pth", weights_only=True)
    b = torch.load(tmp_path / "part" / "checkpoint.pth", weights_only=True)
    assert a["fp16_scaler"] == b["fp16_scaler"]
    assert all(torch.equal(a["teacher"][k], b["teacher"][k]) for k in a["teacher"])


def test_plain_dino_model_type_trains_and_its_teacher_loads_strictly(tiny_csv, tmp_path):
    """model_type dino (main_dino.py's ablation): the ViT has no GSD register, the loss is DINO's alone, and the
    exported teacher (DINO keys) loads strictly through a 'dino-' card; SatDINO-only settings are refused."""
    with pytest.raises(ProtocolError, match="no GSD register; set gsd_loss: null"):
        load_config("satdino-demo-tiny", TINY + ["model_type=dino"])
    proto = load_config("satdino-demo-tiny", TINY + ["model_type=dino", "augmentation_type=dino", "gsd_loss=null",
                                                     "epochs=1", "warmup_epochs=0", "warmup_teacher_temp_epochs=1"])
    t = Trainer(proto, open_pretrain_source(str(tiny_csv), data_root="/"), tmp_path / "dino", progress=False)
    assert t.student.backbone.num_registers == 0 and not hasattr(t.teacher.backbone, "gsd_register")
    t.train()
    rows = _losses(tmp_path / "dino")
    assert len(rows) == 2 and all(float(r[4]) == 0.0 for r in rows)  # no GSD loss
    sd = torch.load(tmp_path / "dino" / TEACHER, weights_only=True)["teacher"]
    assert "gsd_register" not in sd and sd["pos_embed"].shape[1] == 14 * 14 + 1  # CLS + patches, no register slot
    card = card_for_config(resolved(proto))
    assert card.name == "dino-vit_tiny-16-d2" and card.depth == 2 and card.options == {"gsd_register": False}
    loaded = load_model(card, str(tmp_path / "dino" / TEACHER))
    out = loaded.model.forward_features(torch.rand(1, 3, 64, 64))
    assert out.register is None and out.patches.shape == (1, 16, 192)
    # a SatDINO teacher is refused by the plain-DINO card, naming the key
    sat = load_config("satdino-demo-tiny", TINY)
    export_teacher(Trainer(sat, open_pretrain_source(str(tiny_csv), data_root="/"), tmp_path / "sat",
                           progress=False).teacher.state_dict(), tmp_path / "sat", {})
    with pytest.raises(WeightsError, match="gsd_register"):
        load_model(card, str(tmp_path / "sat" / TEACHER))


def test_sources_need_a_gsd(tmp_path, ucm_mini):
    from satbench.errors import DataError

    bundled = open_pretrain_source("ucm-mini")  # a bundled dataset's GSD comes from its catalog spec (recorded)
    assert bundled.description["gsd"] == 0.3 and bundled.gsds[0] == 0.3
    with pytest.raises(DataError, match="--gsd"):
        open_pretrain_source(str(ucm_mini.images_dir / "forest"))
    src = open_pretrain_source(str(ucm_mini.images_dir / "forest"), gsd=0.3)
    images, label, meta = src[0]
    assert len(images) == 3 and images[0].mode == "RGB" and meta == {"gsd": [0.3, 0.3, 0.3]}
    with pytest.raises(DataError, match="no such file"):
        open_pretrain_source(str(tmp_path / "nope"), gsd=0.3)


def test_cli_pretrain_refuses_to_overwrite_and_reports_one_line(tmp_path):
    (tmp_path / "checkpoint.pth").write_bytes(b"x")
    r = subprocess.run([sys.executable, "-m", "satbench.cli", "pretrain", "--config", "satdino-demo-tiny",
                        "--output", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "already holds a checkpoint.pth" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_two_process_gloo_torchrun(tiny_csv, tmp_path):
    """2 processes x batch 2 with torchrun (gloo): trains, writes one checkpoint with 2 RNG states, resumes."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "satbench.cli", "pretrain", "--config", "satdino-demo-tiny", "--data", str(tiny_csv),
           "--data-root", "/", "--output", str(tmp_path / "ddp"), "--device", "cpu", "--no-progress"]
    sets = [a for s in TINY + ["batch_size_per_gpu=2"] for a in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd + sets + ["--set", "epochs=1"], capture_output=True, text=True, timeout=600, env=env)
    # refused (epochs=1 < warm-up epochs); torchrun reports a failed child as exit 1, the child said why in one line
    assert r.returncode != 0 and r.stderr.startswith("satbench: error: pretrain config") and "warmup_teacher_temp_epochs" in r.stderr
    r = subprocess.run(cmd + sets, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    ck = torch.load(tmp_path / "ddp" / "checkpoint.pth", weights_only=True)
    assert len(ck["rng"]) == 2 and ck["meta"]["world_size"] == 2 and ck["epoch"] == 2
    rows = _losses(tmp_path / "ddp")
    assert len(rows) == 4  # 8 images / (2 x 2) = 2 steps per epoch
    assert float(rows[-1][5]) > 0  # lr scaled by the 2-process batch
    # centre is the all-reduced mean: identical on both ranks, so the teacher is identical too
    load_model(card_for_config(resolved(load_config("satdino-demo-tiny", TINY))), str(tmp_path / "ddp" / TEACHER))


@pytest.mark.slow
def test_two_node_rendezvous_matches_one_node_with_two_processes(tiny_csv, tmp_path):
    """Multi-node through torchrun's own c10d rendezvous, simulated with two agents (--nnodes 2, one process each)
    on this machine: the same losses and the same teacher as one agent with two processes."""
    import socket

    args = ["-m", "satbench.cli", "pretrain", "--config", "satdino-demo-tiny", "--data", str(tiny_csv), "--data-root", "/",
            "--device", "cpu", "--no-progress"] + [a for s in TINY + ["batch_size_per_gpu=2"] for a in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = [sys.executable, "-m", "torch.distributed.run"]
    r = subprocess.run(run + ["--standalone", "--nproc_per_node", "2"] + args + ["--output", str(tmp_path / "one")],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    node = run + ["--nnodes", "2", "--nproc_per_node", "1", "--rdzv-backend", "c10d",
                  "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "satbench-two-nodes"]
    agents = [subprocess.Popen(node + args + ["--output", str(tmp_path / "two")], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [a.communicate(timeout=600) for a in agents]
    assert all(a.returncode == 0 for a in agents), [o[1][-1500:] for o in outs]
    ck = torch.load(tmp_path / "two" / "checkpoint.pth", weights_only=True)
    assert ck["meta"]["world_size"] == 2 and len(ck["rng"]) == 2
    assert _losses(tmp_path / "one") == _losses(tmp_path / "two")
    a = torch.load(tmp_path / "one" / TEACHER, weights_only=True)["teacher"]
    b = torch.load(tmp_path / "two" / TEACHER, weights_only=True)["teacher"]
    assert all(torch.equal(a[k], b[k]) for k in a)
