"""Token groups and named pooling: declared layouts of timm DINOv2(-reg) / DINOv3, ``pool`` cls | avg | cls+avg.

The pooled features are checked against timm's own forward (``global_pool='token'`` = upstream DINOv3's CLS,
``global_pool='avg'`` = timm's Eva default) on the same random weights, never against satbench's own arithmetic only.
"""

from __future__ import annotations

import pytest
import torch

from satbench.errors import SatbenchError
from satbench.models.backbones.timm_vit import default_pool, token_layout
from satbench.models.backbones.tokens import TokenLayout, check_pool, pool_dim, pool_tokens
from satbench.models.registry import get_card
from satbench.models.weights import load_model


def test_pool_tokens_on_a_hand_made_sequence():
    layout = TokenLayout(cls=1, registers=2)
    t = torch.arange(2 * 5 * 3, dtype=torch.float32).view(2, 5, 3)  # cls, reg, reg, patch, patch
    assert torch.equal(pool_tokens(t, layout, "cls"), t[:, 0])
    assert torch.equal(pool_tokens(t, layout, "avg"), t[:, 3:].mean(1))  # registers left out
    both = pool_tokens(t, layout, "cls+avg")
    assert both.shape == (2, 6) and torch.equal(both, torch.cat([t[:, 0], t[:, 3:].mean(1)], -1))
    assert pool_dim(384, "cls+avg") == 768 and layout.describe() == "cls+2reg+patches"
    with pytest.raises(SatbenchError, match="needs a CLS token"):
        check_pool("cls", TokenLayout(cls=0), "model m")
    with pytest.raises(SatbenchError, match="pool must be one of cls, avg, cls\\+avg"):
        check_pool("mean", layout, "model m")


@pytest.mark.parametrize("name, layout, pool", [
    ("vit_small_patch14_dinov2.lvd142m", "cls+patches", "cls"),
    ("vit_small_patch14_reg4_dinov2.lvd142m", "cls+4reg+patches", "cls"),
    ("vit_small_patch16_dinov3.lvd1689m", "cls+4reg+patches", "cls"),
    ("vit_large_patch16_dinov3.sat493m", "cls+4reg+patches", "cls"),
])
def test_timm_cards_declare_tokens_and_default_pool(name, layout, pool):
    card = get_card(f"timm:{name}")
    assert card.feature == pool and f"tokens {layout}" in card.description
    if "dinov3" in name:
        assert "upstream DINOv3" in card.description and "#2681" in card.description
    if "sat493m" in name:  # the satellite weights' own statistics, not ImageNet's
        assert card.norm.mean == (0.430, 0.411, 0.296) and card.norm.std == (0.213, 0.156, 0.143)
    else:
        assert card.normalization == "imagenet"


def test_dinov3_pools_match_timm_token_and_avg_forwards():
    import timm

    loaded = load_model(get_card("timm:vit_small_patch16_dinov3.lvd1689m"), "random", seed=1)
    m = loaded.model
    assert m.options["pool"] == "cls" and m.options["tokens"] == "cls+4reg+patches" and m.options["global_pool"] == "avg"
    sd = m.state_dict()
    ref_tok = timm.create_model("vit_small_patch16_dinov3", num_classes=0, global_pool="token").eval()
    ref_avg = timm.create_model("vit_small_patch16_dinov3", num_classes=0).eval()  # timm's default: avg
    ref_tok.load_state_dict(sd)
    ref_avg.load_state_dict(sd)
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        out = m.forward_features(x)
        assert torch.allclose(out.cls, ref_tok(x), atol=1e-5)  # upstream DINOv3: the final-normed CLS
        assert out.patches.shape == (2, 4 * 6, 384) and out.grid == (4, 6)  # 4 registers are not patches
        avg = load_model(get_card("timm:vit_small_patch16_dinov3.lvd1689m"), "random", seed=1, pool="avg")
        assert avg.card.feature == "avg"
        assert torch.allclose(avg.model(x), ref_avg(x), atol=1e-5)
        both = load_model(get_card("timm:vit_small_patch16_dinov3.lvd1689m"), "random", seed=1, pool="cls+avg")
        assert both.card.feature_dim == 768
        assert torch.allclose(both.model(x), torch.cat([ref_tok(x), ref_avg(x)], -1), atol=1e-5)
        assert not torch.allclose(ref_tok(x), ref_avg(x), atol=1e-3)  # the choice matters


def test_dinov2_reg_layout_is_read_from_parameters_not_token_counts():
    import timm

    m = timm.create_model("vit_small_patch14_reg4_dinov2", num_classes=0, dynamic_img_size=True)
    assert token_layout(m) == TokenLayout(cls=1, registers=4)
    assert default_pool("vit_small_patch14_reg4_dinov2.lvd142m", m)[0] == "cls"
    m.num_prefix_tokens = 1  # a model whose declared groups disagree is refused, not guessed
    with pytest.raises(SatbenchError, match="num_prefix_tokens"):
        token_layout(m)
