"""The seeded corruptions of tasks/corruptions/reo-v1.yaml: golden pixels, monotone severity, determinism, errors."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from satbench.data.corruptions import (SEVERITIES, TYPES, CorruptionSettings, corrupt, corruption_rng,
                                       load_corruption_settings)
from satbench.errors import ProtocolError
from tests.support.paths import UCM_MINI

SPLIT = "0" * 63 + "1"
# Two bundled images where pixel distance grows with every type (on strongly textured fields, e.g. agricultural04,
# rotate/scale/translate saturate after severity 2: every shifted stripe is already as far from the clean one).
IMAGES = ("airplane/airplane40.jpg", "baseballdiamond/baseballdiamond16.jpg")

# sha256 (first 16 hex) of the corrupted pixels of airplane40 at index 3, seed 0 (numpy 2.4, scipy 1.17, PIL 13).
GOLDEN = {
    'gaussian_noise': ('2001c481973598e7', 'a4c40ce18bf438f1', '57184d8458d399af', '1d7acdf35d827984', '9e151386c1acd6a7'),
    'salt_and_pepper': ('0eaf3e6ad201eb2d', '811ce688326cb354', 'bf4e20b133ff18fb', '16d2619eeecf7d1f', 'b4cd1672509dab03'),
    'gaussian_blur': ('bf9db5456b47da3d', '3bf91156f004c672', 'e05a562f7679963a', '0dc4d1cbb4d8ec66', 'e2f0f38bec328c43'),
    'motion_blur': ('f29707d648136640', 'bedb85f547054baf', '5aa15fc6e177ddbd', 'cd4659eeb9475ae1', '713c2498b9dd5819'),
    'brightness_contrast': ('b120881bf49b0343', '2df16c196f00e5fb', '78c7a562884f81a0', '824c11eda7c98e48', 'c1f7d702a80ae5e7'),
    'clouds': ('d10a29bbb4462749', '9e281008e3d2d3b4', 'e550dc104bf577a2', '8c2152cdaef3238e', '068ee6fa307d4e4c'),
    'haze': ('e0081d6a60ca98a8', '26817da78ac6c498', '3b62a7058b02aa4e', '64d12ca1478c2010', '3cd636a2377be545'),
    'data_gaps': ('0178ff40d9fbe63e', '53174353948534d9', '3e7b5812a164d7f7', '99bcce8045f8c4b3', 'ee20b0a31a0778a4'),
    'jpeg': ('0bcf671e5ed40c23', '4ab9f58e61b1d173', '45d01679b675e1bb', 'd0b6c37b2f31b08c', '6c1779f97024d1d2'),
    'rotate': ('fafdb66c5baad9e7', '1a0de10342f0e81e', '89b6e96d97d1e2f7', '8c2b9990000a1b2d', '5004b105aaa38b65'),
    'scale': ('e43b9b9a5670b9fa', '1397fbaf65530fd0', '27edf0986e0c6200', '417e5406861a3a2f', '6800b2a9940f51a8'),
    'translate': ('afbd94467a3fb403', '51ad9a0cdfbe3ad2', '39827f3be5578817', '0f5e5210ad4bb8b6', '143bc11379f83512'),
}


def _image(rel: str = IMAGES[0]) -> np.ndarray:
    return np.asarray(Image.open(UCM_MINI / "images" / rel).convert("RGB"))


@pytest.fixture(scope="module")
def settings() -> CorruptionSettings:
    return load_corruption_settings("reo-v1")[0]


def test_protocol_loads_strictly_and_is_hashed(settings):
    from satbench.config.protocols import load_protocol

    proto = load_protocol("reo-v1", task="corruptions")
    assert len(proto.hash) == 64 and proto.as_record()["hash"] == proto.hash
    assert settings.gaussian_noise == (0.08, 0.12, 0.18, 0.26, 0.38) and settings.jpeg == (25, 18, 15, 10, 7)
    assert set(TYPES) <= set(proto.params)
    with pytest.raises(ProtocolError, match=r"reo-v1.*unknown key gausian_noise"):
        proto.with_overrides(gausian_noise=[1, 2, 3, 4, 5]).settings(CorruptionSettings)
    with pytest.raises(ProtocolError, match=r"jpeg must be"):
        proto.with_overrides(jpeg=[25, 18]).settings(CorruptionSettings)


@pytest.mark.parametrize("kind", TYPES)
def test_golden_pixels(kind, settings):
    im = _image()
    got = tuple(hashlib.sha256(corrupt(im, kind, sev, corruption_rng(SPLIT, 3, kind, sev, 0), settings).tobytes())
                .hexdigest()[:16] for sev in SEVERITIES)
    assert got == GOLDEN[kind]


@pytest.mark.parametrize("rel", IMAGES)
@pytest.mark.parametrize("kind", TYPES)
def test_severity_is_monotone(kind, rel, settings):
    im = _image(rel)
    dist = [float(np.abs(corrupt(im, kind, sev, corruption_rng(SPLIT, 0, kind, sev, 0), settings).astype(float)
                         - im).mean()) for sev in SEVERITIES]
    assert all(b > a for a, b in zip(dist, dist[1:])) and dist[0] > 0, dist


@pytest.mark.parametrize("kind", TYPES)
def test_deterministic_pure_and_seed_dependent(kind, settings):
    im = _image()
    before = im.copy()
    a = corrupt(im, kind, 4, corruption_rng(SPLIT, 7, kind, 4, 0), settings)
    b = corrupt(im, kind, 4, corruption_rng(SPLIT, 7, kind, 4, 0), settings)
    assert np.array_equal(a, b) and np.array_equal(im, before) and a.dtype == np.uint8 and a.shape == im.shape
    if kind not in ("gaussian_blur", "brightness_contrast", "haze", "jpeg", "scale"):  # the deterministic ones
        c = corrupt(im, kind, 4, corruption_rng(SPLIT, 8, kind, 4, 0), settings)
        assert not np.array_equal(a, c)


def test_rng_depends_on_every_part_of_its_seed():
    draws = {tuple(corruption_rng(*args).integers(0, 2**62, 4)) for args in [
        (SPLIT, 0, "jpeg", 1, 0), ("0" * 63 + "2", 0, "jpeg", 1, 0), (SPLIT, 1, "jpeg", 1, 0),
        (SPLIT, 0, "haze", 1, 0), (SPLIT, 0, "jpeg", 2, 0), (SPLIT, 0, "jpeg", 1, 1)]}
    assert len(draws) == 6
    assert np.array_equal(corruption_rng(SPLIT, 5, "clouds", 3, 2).random(3),
                          corruption_rng(SPLIT, 5, "clouds", 3, 2).random(3))


@pytest.mark.parametrize("kind,severity,pattern", [
    ("gausian_noise", 1, r"unknown corruption type 'gausian_noise'.*gaussian_noise"),
    ("jpeg", 0, r"severity must be an integer 1\.\.5, got 0 \(type jpeg\)"),
    ("jpeg", 6, r"severity must be an integer 1\.\.5, got 6"),
    ("jpeg", True, r"severity must be an integer 1\.\.5, got True"),
])
def test_bad_type_or_severity_is_one_line(kind, severity, pattern, settings):
    for call in (lambda: corruption_rng(SPLIT, 0, kind, severity, 0),
                 lambda: corrupt(_image(), kind, severity, np.random.default_rng(0), settings)):
        with pytest.raises(ProtocolError, match=pattern) as exc:
            call()
        assert "\n" not in str(exc.value)


def test_bad_image_is_refused(settings):
    with pytest.raises(ProtocolError, match=r"uint8 HxWx3"):
        corrupt(np.zeros((8, 8), np.uint8), "jpeg", 1, np.random.default_rng(0), settings)
    with pytest.raises(ProtocolError, match=r"hex digest"):
        corruption_rng("not-hex", 0, "jpeg", 1, 0)
