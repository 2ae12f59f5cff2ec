"""``hf-transformers:<repo>`` / ``hf-transformers:<folder>``: transformers' shipped vision classes as satbench backbones.

Tiny models (hidden 32, 2 layers) with numpy-drawn weights are saved with ``save_pretrained`` into snapshot folders
(or a Hugging Face cache laid out on disk) and loaded by name; nothing touches the network.
"""

from __future__ import annotations

import json
import sys
import time

import pytest
import torch

from satbench.errors import InputSizeError, SatbenchError, WeightsError

pytest.importorskip("transformers", reason="the optional 'transformers' extra is not installed")

from support.builders import hf_snapshot, lay_out_hub_cache, tiny_hf_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

#: class -> (config overrides, the reference feature of the plain transformers forward, token layout, default pool)
CASES = {
    "Dinov2Model": ({}, "pooler", "cls+patches", "cls"),
    "Dinov2WithRegistersModel": ({"num_register_tokens": 4}, "pooler", "cls+4reg+patches", "cls"),
    "DINOv3ViTModel": ({"num_register_tokens": 4}, "pooler", "cls+4reg+patches", "cls"),
    "ViTModel": ({}, "cls", "cls+patches", "cls"),
    "CLIPVisionModel": ({}, "pooler", "cls+patches", "cls"),
    "SiglipVisionModel": ({}, "pooler", "patches", "head"),
    "CLIPModel": ({}, "pooler", "cls+patches", "cls"),  # two-tower repositories: their vision tower
    "SiglipModel": ({}, "pooler", "patches", "head"),
}
INTERPOLATE = {"ViTModel", "CLIPVisionModel", "SiglipVisionModel", "CLIPModel", "SiglipModel"}


def _reference(model, name: str, x: torch.Tensor) -> torch.Tensor:
    """The plain transformers feature of ``x`` (already normalised)."""
    kw = {"interpolate_pos_encoding": True} if name in INTERPOLATE else {}
    with torch.no_grad():
        if name in ("CLIPModel", "SiglipModel"):
            out = model.vision_model(pixel_values=x, **kw)
        else:
            out = model(pixel_values=x, **kw)
    return out.last_hidden_state[:, 0] if CASES[name][1] == "cls" else out.pooler_output


def _load(folder, weights=None, **options):
    from satbench.api import load

    return load(f"hf-transformers:{folder}", weights, options=options)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_class_loads_strictly_and_gives_the_plain_transformers_feature(tmp_path, name):
    overrides, _, tokens, pool = CASES[name]
    ref = tiny_hf_model(name, seed=1, **overrides)
    folder = hf_snapshot(tmp_path / "snap", ref)
    loaded = _load(folder)
    card, model = loaded.card, loaded.model
    assert (card.family, card.patch_size, card.embed_dim, card.depth, card.feature, card.normalization) == (
        "hf-transformers", 8, 32, 2, pool, "imagenet")
    assert card.name == f"hf-transformers:{folder.resolve()}"
    opts = model.options
    assert opts["tokens"] == tokens and opts["pool"] == pool and opts["trust_remote_code"] is False
    assert opts["hf_class"] == {"CLIPModel": "CLIPVisionModel", "SiglipModel": "SiglipVisionModel"}.get(name, name)
    assert loaded.weights.source == "file" and loaded.weights.path == str(folder / "model.safetensors")
    assert len(loaded.weights.tensors_sha256) == 64
    if name in ("CLIPModel", "SiglipModel", "ViTModel"):  # the text tower / ViT's tanh pooler: dropped by a list
        assert loaded.weights.extras["dropped_keys"] > 0
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        out = model.forward_features(x)
    torch.testing.assert_close(out.cls, _reference(ref, name, x), rtol=0, atol=1e-6)
    assert model.layout.prefix == {"cls+patches": 1, "cls+4reg+patches": 5, "patches": 0}[tokens]
    assert out.grid == (4, 6) and out.patches.shape == (2, 24, 32)


def test_clip_avg_pools_post_layernormed_patches_and_cls_equals_pooler_output(tmp_path):
    ref = tiny_hf_model("CLIPVisionModel", seed=2)
    folder = hf_snapshot(tmp_path / "clip", ref)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        plain = ref(pixel_values=x)
        want_avg = ref.post_layernorm(plain.last_hidden_state[:, 1:]).mean(1)
        avg = _load(folder, pool="avg").model(x)
        both = _load(folder, pool="cls+avg").model(x)
    torch.testing.assert_close(avg, want_avg, rtol=0, atol=1e-6)
    torch.testing.assert_close(both, torch.cat([plain.pooler_output, want_avg], -1), rtol=0, atol=1e-6)
    with pytest.raises(SatbenchError, match="pool head is SigLIP"):
        _load(folder, pool="head")
    siglip = hf_snapshot(tmp_path / "siglip", tiny_hf_model("SiglipVisionModel", seed=2))
    with pytest.raises(SatbenchError, match="needs a CLS token"):
        _load(siglip, pool="cls")


def test_layers_are_block_outputs_through_the_final_norm(tmp_path):
    ref = tiny_hf_model("Dinov2Model", seed=3)
    model = _load(hf_snapshot(tmp_path / "s", ref)).model
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        hs = ref(pixel_values=x, output_hidden_states=True).hidden_states
        out = model.forward_features(x, layers=(0, -1))
    torch.testing.assert_close(out.layers[0], ref.layernorm(hs[1])[:, 1:], rtol=0, atol=1e-6)
    torch.testing.assert_close(out.layers[1], out.patches, rtol=0, atol=1e-6)


def _protocol_sizes(loaded) -> list[int]:
    """Every input size satdino-knn-v1 asks of this model over the catalog's scene datasets (fitted to its patch)."""
    from satbench.config.protocols import load_protocol
    from satbench.data.catalog import get_dataset_spec
    from satbench.eval.knn_protocols import build_scale_entries

    class _Info:
        def __init__(self, name: str) -> None:
            self.protocol_name = self.name = name
            self.native_size = get_dataset_spec(name).native_size

    sizes = set()
    for ds in ("eurosat", "resisc45", "uc_merced", "whu-rs19", "rs_c11", "siri-whu"):
        sizes.update(e.size for e in build_scale_entries(load_protocol("satdino-knn-v1"), _Info(ds), loaded))
    return sorted(sizes)


@pytest.mark.parametrize("name,patch", [("Dinov2Model", 14), ("Dinov2WithRegistersModel", 14), ("ViTModel", 16),
                                        ("CLIPVisionModel", 16), ("SiglipVisionModel", 16), ("DINOv3ViTModel", 16)])
def test_positions_at_every_knn_scale_of_the_protocol(tmp_path, name, patch):
    """Non-native sizes: satbench interpolates as transformers does (ViT / CLIP / SigLIP need
    interpolate_pos_encoding=True, Dinov2 interpolates itself, DINOv3 uses RoPE); patch 14 takes the floor rule."""
    overrides = {"num_register_tokens": 4} if "Registers" in name or "DINOv3" in name else {}
    ref = tiny_hf_model(name, seed=4, patch_size=patch, image_size=224, hidden_size=16, num_hidden_layers=1, **overrides)
    loaded = _load(hf_snapshot(tmp_path / "s", ref))
    sizes = _protocol_sizes(loaded)
    assert all(s % patch == 0 for s in sizes) and min(sizes) == patch and max(sizes) >= 592 - patch
    for s in sizes:
        x = torch.randn(1, 3, s, s)
        with torch.no_grad():
            got = loaded.model(x)
        torch.testing.assert_close(got, _reference(ref, name, x), rtol=0, atol=1e-5, msg=f"{name} at {s} px")
    with pytest.raises(InputSizeError, match=rf"not a whole number of {patch}-px patches.*--size-rule floor"):
        loaded.model.check_input_size(patch * 4 + 1, patch * 4 + 1)


def test_knn_end_to_end_on_the_bundled_images_records_the_model(tmp_path):
    import satbench
    import json as _json

    ref = tiny_hf_model("Dinov2WithRegistersModel", seed=5, num_register_tokens=4, image_size=64, patch_size=16)
    folder = hf_snapshot(tmp_path / "snap", ref, preprocessor={"image_mean": [0.5, 0.4, 0.3],
                                                                "image_std": [0.2, 0.25, 0.3]})
    rec = satbench.run("knn", model=f"hf-transformers:{folder}", scales=[0.25, 0.125], k=[10, 20],
                       results_dir=tmp_path / "res", num_workers=0, batch_size=128)
    back = _json.loads(rec.path.read_text())  # the record as written
    assert back["model"] == f"hf-transformers:{folder.resolve()}"
    assert [e["key"] for e in back["metrics"]["per_scale"]] == ["256->64(64)", "256->32(32)"]
    assert 0 <= back["summary"]["top1_avg"] <= 100
    w = back["weights"]
    assert w["source"] == "file" and w["path"] == str(folder / "model.safetensors") and len(w["tensors_sha256"]) == 64
    opts = back["extractor"]["model_options"]
    assert (opts["family"], opts["hf_class"], opts["tokens"], opts["pool"], opts["trust_remote_code"],
            opts["snapshot"]) == ("hf-transformers", "Dinov2WithRegistersModel", "cls+4reg+patches", "cls", False, str(folder.resolve()))
    assert back["extractor"]["normalization"]["name"] == "uc_merced"  # the protocol's per-dataset table
    # the model's own statistics (preprocessor_config.json) are its card's, used where a protocol says 'model'
    assert satbench.load_model(f"hf-transformers:{folder}", "random").card.norm.mean == (0.5, 0.4, 0.3)


def test_a_hub_repository_from_the_cache_offline_records_repo_and_commit(tmp_path, monkeypatch):
    from satbench.models.features import FeatureExtractor

    commit = "0123456789abcdef0123456789abcdef01234567"
    ref = tiny_hf_model("Dinov2Model", seed=6)
    snap = lay_out_hub_cache(tmp_path / "hub", "satbench-test/dinov2-tiny", commit, hf_snapshot(tmp_path / "s", ref))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    loaded = _load("satbench-test/dinov2-tiny")
    assert loaded.card.name == "hf-transformers:satbench-test/dinov2-tiny"
    w = loaded.weights.as_dict()
    assert (w["source"], w["hf_repo"], w["revision"], w["hf_file"]) == ("hub", "satbench-test/dinov2-tiny", commit,
                                                                          "model.safetensors")
    opts = FeatureExtractor(loaded, device="cpu").describe()["model_options"]
    assert (opts["hf_repo"], opts["hf_revision"], opts["snapshot"]) == ("satbench-test/dinov2-tiny", commit, str(snap))
    at_commit = _load(f"satbench-test/dinov2-tiny@{commit}")
    assert at_commit.weights.tensors_sha256 == loaded.weights.tensors_sha256


def test_offline_without_a_snapshot_is_one_line_naming_where_to_place_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    t0 = time.perf_counter()
    with pytest.raises(WeightsError) as exc:
        _load("facebook/dinov2-small")
    msg = str(exc.value)
    assert time.perf_counter() - t0 < 5 and "\n" not in msg
    assert "not in the Hugging Face cache" in msg and "downloads are off" in msg
    assert "--model hf-transformers:/path/to/folder" in msg and "hf download facebook/dinov2-small" in msg


def test_a_missing_extra_names_it(tmp_path, monkeypatch):
    from satbench.models.backbones import hf_transformers

    folder = hf_snapshot(tmp_path / "s", tiny_hf_model("Dinov2Model"))
    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers -> ImportError
    hf_transformers.card_for.cache_clear()
    with pytest.raises(SatbenchError, match=r"needs the optional 'transformers' extra: pip install "
                                            r"'satbench\[transformers\]'") as exc:
        _load(folder)
    assert "\n" not in str(exc.value)


def _remote_code_snapshot(folder):
    """A snapshot whose config names its own code (auto_map): a Dinov2 subclass in modeling_tiny.py, its weights in
    that module's own keys (transformers converts keys by model_type, so a new model_type gets none)."""
    from safetensors.torch import save_file

    model = tiny_hf_model("Dinov2Model", seed=7)
    hf_snapshot(folder, model)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(model_type="tiny_remote_dinov2", architectures=["TinyRemoteModel"],
               auto_map={"AutoConfig": "configuration_tiny.TinyRemoteConfig", "AutoModel": "modeling_tiny.TinyRemoteModel"})
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "configuration_tiny.py").write_text(
        "from transformers import Dinov2Config\n\n\nclass TinyRemoteConfig(Dinov2Config):\n"
        "    model_type = 'tiny_remote_dinov2'\n")
    (folder / "modeling_tiny.py").write_text(
        "from transformers import Dinov2Model\nfrom .configuration_tiny import TinyRemoteConfig\n\n\n"
        "class TinyRemoteModel(Dinov2Model):\n    config_class = TinyRemoteConfig\n")
    return folder


def test_trust_remote_code_is_refused_in_one_line_unless_given_and_then_recorded(tmp_path, monkeypatch):
    import transformers.dynamic_module_utils as dmu

    folder = _remote_code_snapshot(tmp_path / "remote")
    with pytest.raises(SatbenchError) as exc:
        _load(folder)
    msg = str(exc.value)
    assert "\n" not in msg and "needs trust_remote_code: its config.json has an auto_map" in msg
    assert "--trust-remote-code" in msg and "Dinov2Model" in msg
    unknown = hf_snapshot(tmp_path / "unknown", tiny_hf_model("ViTModel"))
    cfg = json.loads((unknown / "config.json").read_text())
    (unknown / "config.json").write_text(json.dumps({**cfg, "model_type": "no_such_model"}))
    with pytest.raises(SatbenchError, match="model_type 'no_such_model' is not a model transformers ships"):
        _load(unknown)
    monkeypatch.setattr(dmu, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    loaded = _load(folder, trust_remote_code=True)
    assert type(loaded.model.model).__name__ == "TinyRemoteModel"
    assert loaded.model.options["trust_remote_code"] is True and loaded.model.options["tokens"] == "cls+patches"
    assert loaded.model(torch.randn(1, 3, 32, 32)).shape == (1, 32)


def test_the_trust_remote_code_flag_reaches_the_build_options():
    from satbench.cli.commands.run import common_parser

    args = common_parser().parse_args(["--model", "hf-transformers:x/y", "--trust-remote-code"])
    from satbench.cli.commands._common import model_build_options

    assert model_build_options(args) == {"trust_remote_code": True}
    from satbench.api import check_model_options

    with pytest.raises(SatbenchError, match="the satdino family has no trust_remote_code option"):
        check_model_options("satdino-vit_small-16", {"trust_remote_code": True}, lambda k: "--trust-remote-code")


def test_bad_snapshots_are_one_line_each(tmp_path):
    folder = hf_snapshot(tmp_path / "nopre", tiny_hf_model("Dinov2Model"), preprocessor=None)
    with pytest.raises(WeightsError, match="no preprocessor_config.json .*does not guess"):
        _load(folder)
    swin = tmp_path / "swin"
    swin.mkdir()
    (swin / "config.json").write_text(json.dumps({"model_type": "swin", "hidden_size": 32}))
    with pytest.raises(SatbenchError, match="model_type 'swin' is not one of the transformers vision classes"):
        _load(swin)
    with pytest.raises(WeightsError, match="does not exist"):
        _load(tmp_path / "nowhere")
    with pytest.raises(SatbenchError, match="expected hf-transformers:OWNER/REPO"):
        _load("not a repo")


def test_checkpoints_that_do_not_fit_are_refused_naming_the_keys(tmp_path):
    from safetensors.torch import load_file, save_file

    folder = hf_snapshot(tmp_path / "s", tiny_hf_model("Dinov2Model"))
    sd = load_file(str(folder / "model.safetensors"))
    bad = dict(sd)
    del bad["layernorm.bias"]
    bad["head.weight"] = torch.zeros(3)
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(WeightsError, match=r"missing keys: layernorm\.bias.*unexpected keys: head\.weight"):
        _load(folder, str(tmp_path / "bad.safetensors"))
    half = {k: v.to(torch.bfloat16) for k, v in sd.items()}
    save_file(half, str(tmp_path / "half.safetensors"))
    loaded = _load(folder, str(tmp_path / "half.safetensors"))
    assert loaded.weights.extras["hf_file_dtypes"] == {"bfloat16": len(sd)}
