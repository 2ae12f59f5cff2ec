"""Multi-crop views of SatDINO pretraining (spec 2.3): bins, per-view GSD, source images, pipeline."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch
from PIL import Image

from satbench.data.images import read_rgb
from satbench.data.normalization import get_normalization
from satbench.pretrain.augment import MetaRandomResizedCrop, MultiCropAugmentation, local_scale_bins


@pytest.fixture
def real_image(ucm_mini):
    return read_rgb(ucm_mini.samples("train")[0].path)


def test_local_bins_are_the_ten_002_bins():
    bins = local_scale_bins((0.05, 0.25), 10)
    assert len(bins) == 10
    for i, (lo, hi) in enumerate(bins):
        assert lo == pytest.approx(0.05 + 0.02 * i)
        assert hi == pytest.approx(0.07 + 0.02 * i)


def test_satdino_local_area_fractions_fall_in_their_bins(real_image):
    aug = MultiCropAugmentation("satdino", get_normalization("fmow"))
    assert len(aug.local_crops) == 10
    torch.manual_seed(0)
    W, H = real_image.size
    bins = local_scale_bins((0.05, 0.25), 10)
    for i, rrc in enumerate(aug.local_crops):
        assert rrc.scale == pytest.approx(bins[i])
        for _ in range(20):
            _, _, (_, _, h, w) = rrc.crop_with_gsd(real_image, 0.3)
            frac = h * w / (H * W)
            # rounding of w and h to whole pixels moves the fraction by < 0.003 on a 256 px image
            assert bins[i][0] - 0.003 <= frac <= bins[i][1] + 0.003, (i, frac)
    # globals: one shared RRC with scale (0.25, 1), 224 px
    assert aug.global_crop.scale == (0.25, 1.0) and aug.global_crop.size == (224, 224)


def test_dino2_locals_use_the_whole_range():
    aug = MultiCropAugmentation("dino2", get_normalization("fmow"))
    assert all(r.scale == (0.05, 0.25) for r in aug.local_crops)


@pytest.mark.parametrize("size", [224, 96])
def test_per_view_gsd_formula(real_image, size):
    rrc = MetaRandomResizedCrop(size, scale=(0.05, 1.0))
    torch.manual_seed(1)
    for _ in range(10):
        out, g, (_, _, h, w) = rrc.crop_with_gsd(real_image, 0.5)
        assert out.size == (size, size)
        assert g == pytest.approx(0.5 / ((size / w + size / h) / 2))
    # zooming in (small box blown up) lowers the GSD, shrinking a large box raises it
    _, g_small, (_, _, h, w) = MetaRandomResizedCrop(224, scale=(0.05, 0.06)).crop_with_gsd(real_image, 1.0)
    assert g_small < 1.0


def test_views_shapes_order_and_sources(real_image, monkeypatch):
    aug = MultiCropAugmentation("satdino", get_normalization("fmow"))
    imgs = [real_image, real_image.resize((300, 200)), real_image.resize((400, 400))]
    seen = []
    orig = MetaRandomResizedCrop.crop_with_gsd

    def spy(self, img, gsd):
        seen.append((img.size, gsd))
        return orig(self, img, gsd)

    monkeypatch.setattr(MetaRandomResizedCrop, "crop_with_gsd", spy)
    crops, meta = aug(imgs, {"gsd": [1.0, 2.0, 3.0], "year": [2010, 2011, 2012]})
    assert [tuple(c.shape) for c in crops] == [(3, 224, 224)] * 2 + [(3, 96, 96)] * 10
    assert [s for s, _ in seen] == [(300, 200), (400, 400)] + [(256, 256)] * 10  # g1<-[1], g2<-[2], locals<-[0]
    assert [g for _, g in seen] == [2.0, 3.0] + [1.0] * 10
    assert meta["year"] == [2011, 2012] + [2010] * 10
    assert len(meta["gsd"]) == 12
    assert crops[0].dtype == torch.float32


def test_blur_and_solarize_probabilities_as_dino():
    aug = MultiCropAugmentation("satdino", get_normalization("fmow"))
    g1 = [t for t in aug.global_transfo1.transforms]
    g2 = [t for t in aug.global_transfo2.transforms]
    loc = [t for t in aug.local_transfo.transforms]
    assert g1[1].prob == 1.0 and g2[1].prob == 0.1 and g2[2].p == 0.2 and loc[1].prob == 0.5
    jitter = g1[0].transforms[1]
    assert jitter.p == 0.8
    cj = jitter.transforms[0]
    assert (cj.brightness, cj.contrast, cj.saturation, cj.hue) == ((0.6, 1.4), (0.6, 1.4), (0.8, 1.2), (-0.1, 0.1))
    # normalize with the config's preset
    norm = g1[-1].transforms[1]
    assert tuple(norm.mean) == (0.433, 0.436, 0.407)


def test_metadata_types_need_gsd(real_image):
    aug = MultiCropAugmentation("satdino", get_normalization("fmow"))
    with pytest.raises(ValueError, match="gsd"):
        aug([real_image] * 3, None)
