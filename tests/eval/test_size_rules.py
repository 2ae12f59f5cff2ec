"""``size_rule``: protocol sizes fitted to a patch-14 model (DINOv2) at every kNN scale, named and recorded.

A size the model cannot take under ``strict`` is one line before any image is decoded, never timm's AssertionError.
"""

from __future__ import annotations

import pytest

from satbench.config.protocols import load_protocol
from satbench.data.catalog import get_dataset_spec
from satbench.data.scene import open_scene_dataset
from satbench.errors import InputSizeError
from satbench.eval.knn import run_knn
from satbench.eval.knn_protocols import build_scale_entries
from satbench.eval.size_rules import fitted_size
from satbench.leaderboard.runs import settings
from satbench.models.registry import get_card
from satbench.models.weights import load_model

DATASETS = ("eurosat", "resisc45", "uc_merced", "whu-rs19", "rs_c11", "siri-whu")


class _Info:
    def __init__(self, name: str) -> None:
        self.protocol_name = self.name = name
        self.native_size = get_dataset_spec(name).native_size


@pytest.fixture(scope="module")
def dinov2_reg():
    return load_model(get_card("timm:vit_small_patch14_reg4_dinov2.lvd142m"), "random", seed=0)


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("rule", ["floor", "crop"])
def test_every_scale_fits_patch_14(dataset, rule, dinov2_reg):
    proto = load_protocol("satdino-knn-v1")
    if rule != "floor":
        proto = proto.with_overrides(size_rule=rule)
    base = build_scale_entries(proto, _Info(dataset), "timm")  # no model: the protocol's own sizes
    entries = build_scale_entries(proto, _Info(dataset), dinov2_reg)
    for b, e in zip(base, entries):
        assert e.size % 14 == 0 and e.size == b.size // 14 * 14 and b.size - 14 < e.size <= b.size
        d = e.as_dict()
        if e.size != b.size:
            assert d["protocol_size"] == b.size and d["size_rule"] == rule and e.key.endswith(f"({e.size})")
            if rule == "crop":
                assert e.view.spec["center_crop"] == b.size and e.view.spec["patch_crop"] == e.size
            else:
                assert e.view.spec["center_crop"] == e.size
        else:
            assert "protocol_size" not in d


def test_patch_16_models_are_untouched():
    model = load_model(get_card("timm:vit_small_patch16_dinov3.lvd1689m"), "random")
    for ds in DATASETS:
        entries = build_scale_entries(load_protocol("satdino-knn-v1"), _Info(ds), model)
        assert all(e.protocol_size is None for e in entries)
    assert fitted_size(64, 16, "floor", "p") == 64 and fitted_size(64, 14, "floor", "p") == 56


def test_strict_refuses_in_one_line_before_decoding(dinov2_reg, monkeypatch):
    import PIL.Image

    def no_decode(*a, **k):
        raise AssertionError("an image was decoded")

    monkeypatch.setattr(PIL.Image, "open", no_decode)
    proto = load_protocol("satdino-knn-v1").with_overrides(size_rule="strict", scales=[0.25])
    with pytest.raises(InputSizeError, match=r"64 x 64 px .*14-px patches.*--size-rule floor") as exc:
        run_knn(dinov2_reg, open_scene_dataset("ucm-mini"), proto, device="cpu", cache=None, progress=False,
                num_workers=0)
    assert "\n" not in str(exc.value)


@pytest.mark.slow
def test_dinov2_reg_knn_end_to_end_records_the_fitted_sizes(dinov2_reg):
    proto = load_protocol("satdino-knn-v1").with_overrides(scales=[0.125, 0.25], k=[10, 20])
    rec = run_knn(dinov2_reg, open_scene_dataset("ucm-mini"), proto, device="cpu", cache=None, progress=False,
                  batch_size=128, num_workers=0)
    keys = [e["key"] for e in rec["metrics"]["per_scale"]]
    assert keys == ["256->32(28)", "256->64(56)"]
    sizes = [(e["protocol_size"], e["size"], e["size_rule"]) for e in rec["extra"]["scale_entries"]]
    assert sizes == [(32, 28, "floor"), (64, 56, "floor")]
    assert rec["extractor"]["model_options"]["tokens"] == "cls+4reg+patches"
    assert rec["extractor"]["model_options"]["pool"] == "cls"
    assert 0 <= rec["summary"]["top1_avg"] <= 100
    assert "sizes 32->28, 64->56 px (size_rule floor, not the protocol's)" in settings(rec)
