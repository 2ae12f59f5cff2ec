"""docs/evaluate-your-model.md runs as written: its Python block wraps a module and runs kNN on the bundled images;
the plug-in path (register_module + ``module:<name>``) builds, loads strictly and hints at nested checkpoints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

DOC = Path(__file__).resolve().parents[2] / "docs" / "evaluate-your-model.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.slow
def test_the_wrap_walkthrough_runs_as_written(capsys):
    ns: dict = {"__name__": "doc_example"}
    exec(compile(_blocks("python")[0], str(DOC), "exec"), ns)
    rec = ns["record"]
    assert rec["model"] == "module:MyViT" and rec["weights"]["source"] == "module"
    assert rec["weights"]["extras"]["module_class"] == "doc_example.MyViT"
    assert len(rec["weights"]["sha256"]) == 64
    assert rec["extractor"]["model_options"]["tokens"] == "cls+patches"
    assert rec["extractor"]["model_options"]["pool"] == "cls"
    assert 0 <= rec["summary"]["top1_avg"] <= 100
    assert rec["extractor"]["normalization"]["name"] == "uc_merced"  # the protocol's per-dataset statistics
    # the identity follows the weights: another seed is another sha256
    import satbench

    torch.manual_seed(1)
    other = satbench.wrap(ns["MyViT"](), patch_size=16, normalization="imagenet")
    assert other.weights.sha256 != rec["weights"]["sha256"]


def _toy():
    ns: dict = {"__name__": "doc_example"}
    src = _blocks("python")[0].split("torch.manual_seed(0)")[0]  # the class only
    exec(compile(src, str(DOC), "exec"), ns)
    return ns["MyViT"]


def test_wrap_features_match_the_module_and_bad_declarations_are_one_line():
    import satbench
    from satbench.errors import SatbenchError

    MyViT = _toy()
    torch.manual_seed(0)
    m = MyViT()
    x = torch.randn(2, 3, 64, 64)
    for pool, want in (("cls", lambda t: t[:, 0]), ("avg", lambda t: t[:, 1:].mean(1)),
                       ("cls+avg", lambda t: torch.cat([t[:, 0], t[:, 1:].mean(1)], -1))):
        w = satbench.wrap(m, patch_size=16, normalization="imagenet", pool=pool)
        with torch.no_grad():
            assert torch.allclose(w.model(x), want(m.eval()(x)), atol=1e-6)
        assert w.card.feature_dim == (128 if pool == "cls+avg" else 64)
    bad = satbench.wrap(m, patch_size=16, normalization="imagenet", tokens="cls+4reg+patches")
    with pytest.raises(SatbenchError, match=r"means \[B, 5 \+ 16, D\] outputs, got \(2, 17, 64\)"):
        bad.model(x)
    with pytest.raises(SatbenchError, match="tokens must be"):
        satbench.wrap(m, patch_size=16, normalization="imagenet", tokens="cls+patch")


def test_plugin_module_loads_strictly_and_hints_at_nesting(tmp_path):
    from satbench.api import load
    from satbench.errors import WeightsError
    from satbench.models.backbones.module import register_module

    MyViT = _toy()
    name = register_module("doc-vit", MyViT, patch_size=16, normalization="imagenet")
    torch.manual_seed(2)
    ref = MyViT().eval()
    path = tmp_path / "w.pth"
    torch.save(ref.state_dict(), path)
    loaded = load(name, str(path))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), ref(x)[:, 0])
    nested = tmp_path / "ssl.pth"
    torch.save({"epoch": 3, "student": {f"module.backbone.{k}": v for k, v in ref.state_dict().items()}}, nested)
    with pytest.raises(WeightsError, match=r"nests a state dict of \d+ tensors under 'student'") as exc:
        load(name, str(nested))
    assert "\n" not in str(exc.value)
    flat = tmp_path / "prefixed.pth"
    torch.save({f"module.backbone.{k}": v for k, v in ref.state_dict().items()}, flat)
    with pytest.raises(WeightsError, match=r"every key starts with 'module.backbone.'.*key_prefix"):
        load(name, str(flat))


def test_the_hf_transformers_table_lists_the_family_as_built():
    """Section 3's table names every class the family builds, its model types, token groups and default pool."""
    from satbench.models.backbones.hf_transformers import CLASSES

    rows = {}
    for line in DOC.read_text(encoding="utf-8").split("## 3.", 1)[1].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 6:
            rows[cells[0].strip("`")] = cells
    by_class: dict = {}
    for model_type, (cls, _) in CLASSES.items():
        by_class.setdefault(cls, []).append(model_type)
    assert sorted(rows) == sorted(c.name for c in by_class)
    for cls, types in by_class.items():
        row = rows[cls.name]
        assert sorted(re.findall(r"`([a-z0-9_]+)`", row[1])) == sorted(types)
        tokens = ("cls+" if cls.cls_token else "") + ("<n>reg+" if cls.registers_key else "") + "patches"
        assert row[2] == f"`{tokens}`" and row[4] == f"`{cls.default_pool}`"
