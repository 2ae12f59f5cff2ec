"""satbench export: safetensors and official .pth round trips load strictly and reproduce the features."""

from __future__ import annotations

import torch

from satbench.models.backbones.satdino import vit_small
from satbench.cli.app import main
from satbench.models.registry import get_card
from satbench.models.weights import load_model


def test_export_safetensors_and_pth_round_trip(tmp_path, capsys):
    torch.manual_seed(7)
    src = tmp_path / "official.pth"
    head = {"linear.weight": torch.randn(63, 384), "linear.bias": torch.zeros(63)}
    torch.save({"teacher": vit_small(16).state_dict(), "linear_head": head}, src)
    card = get_card("satdino-vit_small-16")
    ref = load_model(card, str(src))
    x = torch.randn(1, 3, 64, 64)
    for fmt, name in (("safetensors", "m.safetensors"), ("pth", "m.pth")):
        out = tmp_path / name
        assert main(["export", "--weights", str(src), "--format", fmt, "--output", str(out)]) == 0
        back = load_model(card, str(out))
        with torch.no_grad():
            torch.testing.assert_close(back.model(x), ref.model(x), rtol=0, atol=0)
        if fmt == "pth":
            assert back.linear_head is not None and torch.equal(back.linear_head["linear.weight"], head["linear.weight"])
    from safetensors import safe_open

    with safe_open(str(tmp_path / "m.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["model"] == "satdino-vit_small-16" and meta["source_sha256"] == ref.weights.sha256
    assert main(["export", "--weights", str(src), "--output", str(tmp_path / "bad.bin")]) == 2
    assert "expected a .safetensors path" in capsys.readouterr().err
