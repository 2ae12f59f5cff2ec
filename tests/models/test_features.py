"""FeatureExtractor: normalisation is always applied, outputs match the backbone, options are recorded."""

from __future__ import annotations

import pytest
import torch

from satbench.data.images import read_rgb
from satbench.data.transforms import knn_transform
from satbench.errors import SatbenchError
from satbench.models.features import FeatureExtractor
from satbench.data.normalization import get_normalization
from satbench.models.registry import get_card
from satbench.models.weights import load_model


@pytest.fixture(scope="module")
def loaded():
    return load_model(get_card("satdino-vit_small-16"), "random", seed=0)


def real_batch(ucm_mini, n=4, size=64):
    t = knn_transform(size)
    return torch.stack([t(read_rgb(s.path)) for s in ucm_mini.samples("val")[:n]])


def test_normalisation_is_applied(loaded, ucm_mini):
    x = real_batch(ucm_mini)
    fe = FeatureExtractor(loaded, device="cpu")
    norm = get_normalization("fmow")
    mean = torch.tensor(norm.mean).view(1, 3, 1, 1)
    std = torch.tensor(norm.std).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = loaded.model((x - mean) / std)
        raw = loaded.model(x)
    got = fe(x).cls
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert (got - raw).abs().max() > 1e-2  # un-normalised input would give other features


def test_protocol_normalisation_override_and_uint8(loaded, ucm_mini):
    x = real_batch(ucm_mini)
    from satbench.data.catalog import get_dataset_spec

    fe = FeatureExtractor(loaded, normalization=get_dataset_spec("uc_merced").norm, device="cpu")
    assert fe.describe()["normalization"]["name"] == "uc_merced"
    x8 = (x * 255).round().to(torch.uint8)
    torch.testing.assert_close(fe(x8).cls, fe(x8.float() / 255).cls)


def test_features_bundle_and_layers(loaded, ucm_mini):
    fe = FeatureExtractor(loaded, device="cpu")
    f = fe(real_batch(ucm_mini, n=2, size=128), layers=(3, 5, 7, 11))
    assert f.cls.shape == (2, 384) and f.patches.shape == (2, 64, 384) and f.register.shape == (2, 384)
    assert sorted(f.layers) == [3, 5, 7, 11] and f.layers[11].shape == (2, 64, 384)
    torch.testing.assert_close(f.layers[11], f.patches)  # last block + final norm = final patch tokens
    with pytest.raises(SatbenchError, match="out of range"):
        fe(real_batch(ucm_mini, n=1), layers=(12,))


def test_bf16_is_close_and_recorded(loaded, ucm_mini):
    x = real_batch(ucm_mini)
    a = FeatureExtractor(loaded, device="cpu").__call__(x).cls
    fe = FeatureExtractor(loaded, device="cpu", bf16=True)
    b = fe(x).cls
    assert fe.describe()["bf16"] is True and b.dtype == torch.float32
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.99


def test_bad_shapes_and_devices(loaded):
    fe = FeatureExtractor(loaded, device="cpu")
    with pytest.raises(SatbenchError, match=r"\[B, 3, H, W\]"):
        fe(torch.zeros(3, 32, 32))
    with pytest.raises(SatbenchError, match="unknown device"):
        FeatureExtractor(loaded, device="tpu9")
