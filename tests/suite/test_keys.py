"""``satbench suite`` run identity for families that choose their pool per model (timm, hf-transformers, module):
a record made with the model's default pool is the same run as a suite run that names no pool, and one with another
pool is not; options that only record facts of the model (timm_model, tokens, hf_class...) are not compared."""

from __future__ import annotations

import pytest

from satbench.suite.keys import model_option_expectation

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_per_model_default_pool_is_the_cards():
    from satbench.models.registry import get_card

    card = get_card("timm:vit_small_patch16_dinov3.lvd1689m")  # timm's Eva pools by avg; satbench's default is cls
    expected, defaults = model_option_expectation(card, {})
    assert expected["pool"] == defaults["pool"] == card.feature == "cls"
    assert "timm_model" not in expected and "tokens" not in expected and expected["dynamic_img_size"] is True
    assert model_option_expectation(card, {"pool": "avg"})[0]["pool"] == "avg"


def test_a_second_suite_skips_an_hf_transformers_run_with_the_same_pool(tmp_path):
    pytest.importorskip("transformers", reason="the optional 'transformers' extra is not installed")
    import satbench
    from satbench.suite.plan import SuiteConfig, make_plan
    from support.builders import hf_snapshot, tiny_hf_model

    folder = hf_snapshot(tmp_path / "snap", tiny_hf_model("SiglipVisionModel", image_size=64, patch_size=16))
    model = f"hf-transformers:{folder}"
    over = {"knn": {"scales": [0.125], "k": [10]}}
    satbench.run("knn", model=model, dataset="ucm-mini", scales=[0.125], k=[10], results_dir=tmp_path / "res",
                 num_workers=0, device="cpu")

    def status(**options):
        cfg = SuiteConfig(model=model, tasks=["knn"], datasets=["ucm-mini"], results_dir=str(tmp_path / "res"),
                          overrides=over, model_options=options)
        return [i.status for i in make_plan(cfg).items]

    assert status() == ["skip"]  # SigLIP's default pool (head), recorded
    assert status(pool="head") == ["skip"]
    assert status(pool="avg") == ["run"]
