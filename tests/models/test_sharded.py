"""Sharded safetensors snapshots (``model.safetensors.index.json`` + shards), as ``save_pretrained(max_shard_size=...)``
writes them for large DINOv3 / ViT-L repositories: the same features and weights identity as the unsharded save, from a
folder and from the Hugging Face cache (offline), and one line naming the file for every bad index or shard."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from satbench.errors import WeightsError

pytest.importorskip("transformers", reason="the optional 'transformers' extra is not installed")

from support.builders import hf_snapshot, lay_out_hub_cache, tiny_hf_model  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def _load(folder, weights=None):
    from satbench.api import load

    return load(f"hf-transformers:{folder}", weights)


@pytest.fixture(scope="module")
def snaps(tmp_path_factory):
    """A tiny Dinov2Model saved whole and sharded (transformers' own save_pretrained, 20 KB shards)."""
    ref = tiny_hf_model("Dinov2Model", seed=3)
    base = tmp_path_factory.mktemp("shards")
    whole = hf_snapshot(base / "whole", ref)
    sharded = base / "sharded"
    sharded.mkdir()
    ref.save_pretrained(str(sharded), max_shard_size="20KB")
    shutil.copy(whole / "preprocessor_config.json", sharded / "preprocessor_config.json")
    return ref, whole, sharded


def _shards(folder):
    return sorted(p.name for p in folder.glob("model-*-of-*.safetensors"))


def _features(loaded, x):
    with torch.no_grad():
        return loaded.model.forward_features(x).cls


def test_transformers_sharded_save_gives_the_unsharded_features_and_identity(snaps):
    ref, whole, sharded = snaps
    assert not (sharded / "model.safetensors").exists() and len(_shards(sharded)) >= 3
    a, b = _load(whole), _load(sharded)
    assert b.weights.path == str(sharded / "model.safetensors.index.json") and b.weights.source == "file"
    assert a.weights.tensors_sha256 == b.weights.tensors_sha256 and a.weights.sha256 != b.weights.sha256
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(_features(b, x), _features(a, x), rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(_features(b, x), ref(pixel_values=x).pooler_output, rtol=0, atol=1e-6)
    c = _load(sharded, str(sharded / "model.safetensors.index.json"))  # the index named as --weights
    assert c.weights.tensors_sha256 == a.weights.tensors_sha256


def test_sharded_snapshot_from_the_hub_cache_offline(snaps, tmp_path, monkeypatch):
    _, whole, sharded = snaps
    commit = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lay_out_hub_cache(tmp_path / "hf", "test-owner/tiny-dinov2-sharded", commit, sharded)
    from satbench.models.backbones.hf_transformers import snapshot

    snapshot.cache_clear()
    loaded = _load("test-owner/tiny-dinov2-sharded")
    assert loaded.weights.source == "hub" and loaded.weights.hub["hf_file"] == "model.safetensors.index.json"
    assert loaded.weights.hub["revision"] == commit
    assert loaded.weights.tensors_sha256 == _load(whole).weights.tensors_sha256


def _copy(sharded, tmp_path):
    dst = tmp_path / "snap"
    shutil.copytree(sharded, dst)
    return dst


def _index(folder):
    return json.loads((folder / "model.safetensors.index.json").read_text())


def _write_index(folder, data):
    (folder / "model.safetensors.index.json").write_text(json.dumps(data))


@pytest.mark.parametrize("edit, match", [
    (lambda d, f: d["weight_map"].update({k: "../outside.safetensors" for k in list(d["weight_map"])[:1]}),
     r"model\.safetensors\.index\.json: shard names must be plain \.safetensors file names.*'\.\./outside"),
    (lambda d, f: d["weight_map"].update({k: "/etc/x.safetensors" for k in list(d["weight_map"])[:1]}),
     r"index\.json: shard names must be plain"),
    (lambda d, f: d["weight_map"].update({k: "sub/model.safetensors" for k in list(d["weight_map"])[:1]}),
     r"index\.json: shard names must be plain"),
    (lambda d, f: d.update(weight_map=[]), r"index\.json: expected a non-empty 'weight_map' object"),
    (lambda d, f: d["weight_map"].update({"extra.weight": d["weight_map"][next(iter(d["weight_map"]))]}),
     r"model-0000\d-of-0000\d\.safetensors: tensors the index model\.safetensors\.index\.json maps to this shard are "
     r"not in it: extra\.weight"),
    (lambda d, f: d["weight_map"].pop(sorted(d["weight_map"])[0]),
     r"model-0000\d-of-0000\d\.safetensors: tensors the index model\.safetensors\.index\.json does not map to this "
     r"shard: "),
    (lambda d, f: (f / d["weight_map"][next(iter(d["weight_map"]))]).unlink(),
     r"index\.json: shard model-0000\d-of-0000\d\.safetensors does not exist in"),
    (lambda d, f: (f / d["weight_map"][next(iter(d["weight_map"]))]).write_bytes(b"not safetensors at all"),
     r"model-0000\d-of-0000\d\.safetensors: not a readable safetensors shard"),
])
def test_bad_indexes_and_shards_are_one_line_naming_the_file(snaps, tmp_path, edit, match):
    from satbench.models.checkpoints import read_checkpoint

    folder = _copy(snaps[2], tmp_path)
    data = _index(folder)
    edit(data, folder)
    _write_index(folder, data)
    with pytest.raises(WeightsError, match=match) as exc:
        read_checkpoint(folder / "model.safetensors.index.json")
    assert "\n" not in str(exc.value)


def test_an_index_that_is_not_json_or_too_large_is_one_line(snaps, tmp_path, monkeypatch):
    from satbench.models import sharded
    from satbench.models.checkpoints import read_checkpoint

    folder = _copy(snaps[2], tmp_path)
    idx = folder / "model.safetensors.index.json"
    idx.write_text("{not json")
    with pytest.raises(WeightsError, match=r"sharded weights index .*index\.json"):
        read_checkpoint(idx)
    _write_index(folder, {"weight_map": {"a": "model-00001-of-00003.safetensors"}})
    monkeypatch.setattr(sharded, "INDEX_LIMIT", 16)
    with pytest.raises(WeightsError, match=r"sharded weights index .*index\.json.*larger"):
        read_checkpoint(idx)


def test_a_card_weight_file_cached_sharded_loads_by_model_name(tmp_path, monkeypatch):
    """The satbench weights cache (where `timm:` / card downloads land) holding the card's model.safetensors as an
    index + shards (huggingface_hub's save_torch_state_dict): loaded by name, same tensors identity."""
    import yaml
    from huggingface_hub import save_torch_state_dict

    from satbench.models.backbones.satdino import build_satdino
    from satbench.models.checkpoints import tensors_sha256
    from satbench.models.registry import get_card
    from satbench.models.weights import load_model, weights_cache_dir
    from support.paths import TINY_CARD

    data = yaml.safe_load(TINY_CARD.read_text())
    data.update(name="satdino-sharded-tiny", weights={"pretrain": {"filename": "model.safetensors"}})
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "satdino-sharded-tiny.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(tmp_path / "cards"))
    torch.manual_seed(5)
    model = build_satdino(arch="vit_tiny", patch_size=16, depth=2).eval()
    folder = weights_cache_dir() / "satdino-sharded-tiny"
    folder.mkdir(parents=True)
    save_torch_state_dict(model.state_dict(), folder, max_shard_size="200KB")
    assert len(list(folder.glob("model-*.safetensors"))) >= 3 and not (folder / "model.safetensors").exists()
    loaded = load_model(get_card("satdino-sharded-tiny"))
    assert loaded.weights.source == "cache" and loaded.weights.path == str(folder / "model.safetensors.index.json")
    assert loaded.weights.tensors_sha256 == tensors_sha256(model.state_dict())


def test_a_card_download_of_a_sharded_repository_fetches_the_index_and_its_shards(tmp_path, monkeypatch):
    """`timm:` / card downloads (huggingface_hub into the satbench cache): the card's model.safetensors is not in the
    repository, its index is; the index and every shard it names are fetched, then loaded."""
    import huggingface_hub
    import yaml
    from huggingface_hub import save_torch_state_dict
    from huggingface_hub.errors import EntryNotFoundError

    from satbench.models.backbones.satdino import build_satdino
    from satbench.models.checkpoints import tensors_sha256
    from satbench.models.registry import get_card
    from satbench.models.weights import load_model
    from support.loopback_http import LoopbackServer
    from support.paths import TINY_CARD

    data = yaml.safe_load(TINY_CARD.read_text())
    data.update(name="satdino-sharded-hub", weights={"pretrain": {"filename": "model.safetensors",
                                                                  "hf_repo": "owner/sharded"}})
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "satdino-sharded-hub.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(tmp_path / "cards"))
    torch.manual_seed(6)
    model = build_satdino(arch="vit_tiny", patch_size=16, depth=2).eval()
    repo = tmp_path / "repo"
    repo.mkdir()
    save_torch_state_dict(model.state_dict(), repo, max_shard_size="200KB")
    calls = []

    def fake_download(repo_id, filename, revision=None, local_dir=None):
        calls.append(filename)
        if not (repo / filename).is_file():
            raise EntryNotFoundError(f"{filename} not in {repo_id}")
        shutil.copy(repo / filename, f"{local_dir}/{filename}")
        return f"{local_dir}/{filename}"

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    monkeypatch.delenv("SATBENCH_OFFLINE")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with LoopbackServer() as srv:  # the one connection try of satbench.io.network must succeed (never the network)
        monkeypatch.setenv("HF_ENDPOINT", srv.url("/").rstrip("/"))
        loaded = load_model(get_card("satdino-sharded-hub"))
    shards = sorted(p.name for p in repo.glob("model-*.safetensors"))
    assert calls == ["model.safetensors", "model.safetensors.index.json", *shards] and len(shards) >= 3
    assert loaded.weights.source == "hub" and loaded.weights.path.endswith("model.safetensors.index.json")
    assert loaded.weights.tensors_sha256 == tensors_sha256(model.state_dict())
