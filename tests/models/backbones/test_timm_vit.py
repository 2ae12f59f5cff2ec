"""``timm:<model_name>``: dynamic cards, strict loading of a local timm safetensors file, BackboneOutput mapping.

Uses timm's tiny ``test_vit`` (64-d, depth 6) so the default suite stays fast; no network (weights by name fail
offline with the cache path named).
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from satbench.errors import SatbenchError, UnknownNameError, WeightsError
from satbench.models.features import FeatureExtractor
from satbench.models.registry import get_card
from satbench.models.weights import cached_weight_path, load_model


def _reference(num_classes: int = 7):
    import timm

    torch.manual_seed(3)
    return timm.create_model("test_vit", pretrained=False, num_classes=num_classes, dynamic_img_size=True).eval()


def test_dynamic_card_from_timm_registry():
    card = get_card("timm:test_vit")
    assert (card.family, card.arch, card.embed_dim, card.depth, card.patch_size, card.feature_dim) == (
        "timm", "test_vit", 64, 6, 16, 64)
    # test_vit's pretrained cfg uses mean/std 0.5: registered as its own preset
    assert card.normalization == "timm:test_vit"
    assert card.norm.mean == (0.5, 0.5, 0.5) and card.norm.std == (0.5, 0.5, 0.5)
    dino = get_card("timm:vit_small_patch16_224.dino")
    assert dino.normalization == "imagenet" and dino.embed_dim == 384 and dino.depth == 12
    assert dino.weights["pretrain"]["hf_repo"] == "timm/vit_small_patch16_224.dino"


def test_unknown_and_non_vit_names_are_clear_errors():
    with pytest.raises(UnknownNameError, match="vit_smal_patch16_224"):
        get_card("timm:vit_smal_patch16_224")
    with pytest.raises(UnknownNameError, match="nosuchtag"):
        get_card("timm:vit_small_patch16_224.nosuchtag")
    with pytest.raises(SatbenchError, match="resnet18"):
        get_card("timm:resnet18")


def test_local_safetensors_loads_strictly_and_matches_timm(tmp_path):
    ref = _reference()
    path = tmp_path / "test_vit.safetensors"
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))  # includes head.* (dropped)
    loaded = load_model(get_card("timm:test_vit"), str(path))
    assert loaded.weights.source == "file" and len(loaded.weights.sha256) == 64
    m = loaded.model
    x = torch.randn(2, 3, 96, 128)  # not the 160 px default: dynamic_img_size resamples positions
    with torch.no_grad():
        tokens = ref.forward_features(x)
        want_cls = ref.forward_head(tokens, pre_logits=True)
        out = m.forward_features(x, layers=(1, -1))
        _, inter = ref.forward_intermediates(x, indices=[1, 5], norm=True, output_fmt="NLC")
        assert torch.equal(m(x), want_cls)
    torch.testing.assert_close(out.cls, tokens[:, 0])
    torch.testing.assert_close(out.patches, tokens[:, 1:])
    assert out.grid == (6, 8) and out.register is None and out.patches.shape == (2, 48, 64)
    torch.testing.assert_close(out.layers[1], inter[0])
    torch.testing.assert_close(out.layers[5], inter[1])
    with pytest.raises(SatbenchError, match="input_res"):
        m.forward_features(x, input_res=1.0)


def test_feature_extractor_uses_the_cfg_normalisation(tmp_path):
    ref = _reference(num_classes=0)
    path = tmp_path / "w.pth"
    torch.save({"model": ref.state_dict()}, path)
    ext = FeatureExtractor(load_model(get_card("timm:test_vit"), str(path)), device="cpu")
    img = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        want = ref.forward_head(ref.forward_features((img - 0.5) / 0.5), pre_logits=True)
    torch.testing.assert_close(ext(img).cls, want)
    assert ext.describe()["model_options"]["timm_model"] == "test_vit"


def test_wrong_or_missing_weights_fail_clearly(tmp_path):
    sd = _reference().state_dict()
    del sd["blocks.5.mlp.fc2.bias"]
    sd["extra.weight"] = torch.zeros(3)
    path = tmp_path / "bad.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    card = get_card("timm:test_vit")
    with pytest.raises(WeightsError, match=r"missing keys: blocks\.5\.mlp\.fc2\.bias.*unexpected keys: extra\.weight"):
        load_model(card, str(path))
    # by name, offline (conftest): the error names the file to place in the cache
    with pytest.raises(WeightsError, match=str(cached_weight_path(card)).replace(".", r"\.")):
        load_model(card, None)
