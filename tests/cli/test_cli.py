"""CLI: models table, extract, and every error path of the foundation exits non-zero with one readable line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from satbench.models.backbones.satdino import vit_small
from satbench.cli.app import main
from support.paths import CARDS, UCM_MINI

UCM = str(UCM_MINI)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, pattern):
    import re

    assert code != 0
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("satbench: error:"), err
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in err


def test_models_table(capsys):
    code, out, _ = run_cli(capsys, "models", "--no-flops")
    assert code == 0
    for name in ("satdino-vit_small-16", "satdino-vit_small-8", "satdino-vit_base-16"):
        assert name in out
    assert "21.59" in out and "21.37" in out and "85.65" in out


def test_models_table_formats(capsys):
    code, out, _ = run_cli(capsys, "models", "--no-flops", "--format", "json")
    rows = json.loads(out)
    assert all(r["params_ok"] for r in rows if r["family"] == "satdino")


def test_extract_split_file_writes_npy_and_sidecar(capsys, tmp_path):
    out = tmp_path / "feats.npy"
    code, stdout, err = run_cli(capsys, "extract", "--weights", "random", "--images", f"{UCM}/val.txt", "--size", "32",
                                "--output", str(out), "--normalization", "dataset", "--no-progress", "--batch-size", "32")
    assert code == 0, err
    feats = np.load(out)
    side = json.loads(out.with_suffix(".json").read_text())
    lines = [ln.strip() for ln in open(f"{UCM}/val.txt") if ln.strip()]
    assert feats.shape == (len(lines), 384) and feats.dtype == np.float32
    assert [p.split("images/")[-1] for p in side["images"]] == [ln[2:] for ln in lines]  # split-file order
    assert side["transform"] == {"resize": 37, "interpolation": "bicubic", "center_crop": 32, "to_tensor": True}
    assert side["normalization"]["name"] == "uc_merced"
    assert side["weights"]["source"] == "random"
    # the normed CLS: unit-ish LayerNorm output, finite
    assert np.isfinite(feats).all()


def test_extract_image_folder_default_normalization(capsys, tmp_path):
    out = tmp_path / "f.npy"
    code, _, err = run_cli(capsys, "extract", "--weights", "random", "--images", f"{UCM}/images/airplane", "--size", "16",
                           "--output", str(out), "--no-progress")
    assert code == 0, err
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["normalization"]["name"] == "fmow"  # the model's declared normalisation
    assert np.load(out).shape[0] == len(os.listdir(f"{UCM}/images/airplane"))


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_ckpt")
    torch.manual_seed(0)
    torch.save({"teacher": vit_small(16).state_dict()}, d / "s16.pth")
    torch.save({"teacher": vit_small(8).state_dict()}, d / "s8.pth")
    (d / "corrupt.pth").write_bytes(os.urandom(2048))
    return d


@pytest.mark.parametrize("args,pattern", [
    (["--model", "satdino-vit_smal-16"], r"unknown model 'satdino-vit_smal-16' \(did you mean: satdino-vit_small-16"),
    (["--weights", "/no/such/file.pth"], r"weight file /no/such/file.pth does not exist"),
    (["--weights", "{d}/corrupt.pth"], r"corrupt.pth: not a readable PyTorch checkpoint"),
    (["--weights", "{d}/s8.pth"], r"patch 8.*wrong architecture or patch size"),
    (["--model", "satdino-vit_base-16", "--weights", "{d}/s16.pth"], r"embed_dim 384.*embed_dim 768"),
    (["--weights", "random", "--images", "/no/such/folder"], r"/no/such/folder does not exist"),
    (["--weights", "random", "--normalization", "nonsense"], r"unknown normalization 'nonsense'"),
])
def test_extract_error_paths(capsys, tmp_path, ckpts, args, pattern):
    argv = ["extract", "--images", f"{UCM}/val.txt", "--size", "16", "--output", str(tmp_path / "o.npy"), "--no-progress"]
    argv += [a.format(d=ckpts) for a in args]
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, pattern)
    assert not (tmp_path / "o.npy").exists()


def test_weights_by_name_offline_names_the_file(capsys, tmp_path):
    code, _, err = run_cli(capsys, "extract", "--images", f"{UCM}/val.txt", "--output", str(tmp_path / "o.npy"))
    assert_one_line_error(code, err, r"place the weight file at .*satdino-vit_small-16/satdino-vit_small-16\.pth")


def test_console_script_error_has_no_traceback(tmp_path):
    """The installed entry point: a bad argument exits non-zero with one line and no traceback."""
    env = dict(os.environ, SATBENCH_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "satbench.cli", "extract", "--model", "nope", "--images", "x",
                           "--output", str(tmp_path / "o.npy")], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("satbench: error: unknown model 'nope'")
    assert "Traceback" not in proc.stderr


def test_attn_impl_option_is_recorded_and_family_checked(tmp_path, capsys, monkeypatch):
    """--attn-impl sdpa (fused attention, not bit-identical) reaches the backbone and the record; the MAE families
    declare attn_impl too; --pos-interp only SatDINO declares (its families decide, not a family name)."""
    import json

    from satbench.cli.app import main

    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))
    assert main(["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random", "--attn-impl", "sdpa",
                 "--scales", "0.125", "--k", "1", "--no-progress", "--no-cache", "--results-dir", str(tmp_path)]) == 0
    rec = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert rec["extractor"]["model_options"]["attn_impl"] == "sdpa"
    assert main(["extract", "--model", "satmae-vit_large-16", "--weights", "random", "--pos-interp", "size",
                 "--images", str(tmp_path), "--output", str(tmp_path / "f.npy")]) == 2
    assert "--pos-interp does not apply to satmae-vit_large-16" in capsys.readouterr().err
    from satbench.models.backbones import FAMILIES

    assert {"satmae", "scalemae", "satdino"} <= {n for n, f in FAMILIES.items() if "attn_impl" in f.options}


def test_help_imports_nothing_heavy():
    """`satbench --help` (every command's parser registered) imports no torch, mmseg, mmengine, matplotlib, faiss or
    pandas: each command imports what it needs when it runs."""
    import subprocess
    import sys

    code = ("import contextlib, io, sys\nfrom satbench.cli.app import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
            "print([m for m in ('torch', 'mmseg', 'mmengine', 'matplotlib', 'faiss', 'pandas', 'timm') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
