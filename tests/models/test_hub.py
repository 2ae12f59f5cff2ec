"""`--weights hf:OWNER/REPO[@REVISION][/FILE]`: offline from a Hugging Face cache laid out by the test (no network).

The cache follows huggingface_hub's documented layout (``models--owner--repo/{blobs,refs,snapshots}``); the
checkpoint in it is a real satbench SatDINO checkpoint made here. Covered: spec parsing, resolution by branch
and by commit, the recorded repository / commit / sha256, the card's sha256 pin (refused, or allowed with
--allow-unpinned and recorded), other repositories unpinned, a missing file offline, the card's key_prefix
(applied only when the card names it), and the card schema for the new weight-entry keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
from pathlib import Path

import pytest
import torch
import yaml

from satbench.models.backbones.satdino import build_satdino
from satbench.errors import SatbenchError, WeightsError
from satbench.models.hub import parse_hf_spec
from satbench.models.registry import get_card
from satbench.models.weights import load_model
from support.paths import TINY_CARD, UCM_MINI

pytestmark = pytest.mark.usefixtures("one_thread")

COMMIT = "3f4e5d6c7b8a99887766554433221100ffeeddcc"
REPO = "satbench-test/satdino-tiny"
TINY = TINY_CARD


def lay_out_cache(cache: Path, repo: str, commit: str, files: dict[str, bytes], ref: str = "main") -> dict[str, Path]:
    """huggingface_hub's cache layout: blobs/<etag>, refs/<ref> -> commit, snapshots/<commit>/<file> -> ../../blobs/<etag>."""
    base = cache / ("models--" + repo.replace("/", "--"))
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / ref).write_text(commit)
    out = {}
    for name, data in files.items():
        etag = hashlib.sha256(data).hexdigest()
        (base / "blobs").mkdir(exist_ok=True)
        (base / "blobs" / etag).write_bytes(data)
        link = base / "snapshots" / commit / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(base / "blobs" / etag, link.parent))
        out[name] = link
    return out


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A seeded 2-block ViT-Tiny/16 SatDINO checkpoint in the official layout, its bytes and its model."""
    torch.manual_seed(7)
    model = build_satdino(arch="vit_tiny", patch_size=16, depth=2).eval()
    path = tmp_path_factory.mktemp("ck") / "tiny.pth"
    torch.save({"teacher": model.state_dict()}, path)
    return path.read_bytes(), model


@pytest.fixture
def hub_card(tmp_path, monkeypatch, ckpt):
    """A card (via $SATBENCH_MODEL_CARDS) whose pretrain weights live in REPO, pinned to COMMIT and the file's sha256."""
    def make(**entry):
        data = yaml.safe_load(TINY.read_text())
        data["name"] = "satdino-hubtest-tiny"
        data["weights"] = {"pretrain": {"hf_repo": REPO, "filename": "tiny.pth", "revision": COMMIT,
                                        "sha256": hashlib.sha256(ckpt[0]).hexdigest(), **entry}}
        folder = tmp_path / f"cards{len(list(tmp_path.glob('cards*')))}"
        folder.mkdir()
        (folder / "satdino-hubtest-tiny.yaml").write_text(yaml.safe_dump(data))
        monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(folder))
        return get_card("satdino-hubtest-tiny")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    return make


def test_spec_parsing():
    s = parse_hf_spec("hf:strakajk/satdino-vit_small-16")
    assert (s.repo_id, s.revision, s.filename) == ("strakajk/satdino-vit_small-16", None, None)
    s = parse_hf_spec(f"hf:strakajk/satdino-vit_small-16@{COMMIT}/satdino-vit_small-16.pth")
    assert (s.revision, s.filename) == (COMMIT, "satdino-vit_small-16.pth")
    assert parse_hf_spec("hf:a/b@v1.0/sub/model.safetensors").filename == "sub/model.safetensors"
    assert parse_hf_spec("hf:a/b/x.pth").revision is None
    for bad in ("hf:onlyowner", "hf:a/b@", "hf:/a/b", "hf:a/b/../x.pth", "hf:a/b//x", "hf:a b/c"):
        with pytest.raises(WeightsError, match=r"hf:OWNER/REPO\[@REVISION\]\[/FILE\]|plain relative path"):
            parse_hf_spec(bad)


def test_offline_from_cache_records_repo_commit_and_sha(tmp_path, hub_card, ckpt):
    data, model = ckpt
    links = lay_out_cache(tmp_path / "hf", REPO, COMMIT, {"tiny.pth": data})
    card = hub_card()
    for spec in (f"hf:{REPO}", f"hf:{REPO}@main", f"hf:{REPO}@{COMMIT}/tiny.pth"):
        lm = load_model(card, spec)
        rec = lm.weights.as_dict()
        assert rec["source"] == "hub" and rec["hf_repo"] == REPO and rec["hf_file"] == "tiny.pth"
        assert rec["revision"] == COMMIT and rec["pinned"] is True and "unpinned" not in rec
        assert rec["sha256"] == hashlib.sha256(data).hexdigest() and rec["path"] == str(links["tiny.pth"])
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(lm.model(x), model(x), rtol=0, atol=0)
    assert json.dumps(rec)  # recordable as is


def test_card_pin_mismatch_is_refused_unless_allowed(tmp_path, hub_card, ckpt):
    data, _ = ckpt
    lay_out_cache(tmp_path / "hf", REPO, COMMIT, {"tiny.pth": data})
    card = hub_card(sha256="ab" * 32)
    digest = hashlib.sha256(data).hexdigest()
    with pytest.raises(WeightsError, match=rf"sha256 {digest} does not match the card's {'ab' * 32}.*--allow-unpinned"):
        load_model(card, f"hf:{REPO}")
    rec = load_model(card, f"hf:{REPO}", allow_unpinned=True).weights.as_dict()
    assert rec["unpinned"] is True and rec["sha256"] == digest


def test_other_repositories_are_not_pinned_and_missing_files_say_so(tmp_path, hub_card, ckpt):
    torch.manual_seed(8)  # a different (still loadable) checkpoint in someone's own repository
    alt = tmp_path / "alt.pth"
    torch.save({"teacher": build_satdino(arch="vit_tiny", patch_size=16, depth=2).state_dict()}, alt)
    lay_out_cache(tmp_path / "hf", "me/my-ckpt", "1" * 40, {"model.pth": alt.read_bytes()})
    card = hub_card(sha256="cd" * 32)  # would refuse the official file
    rec = load_model(card, "hf:me/my-ckpt/model.pth").weights.as_dict()
    assert rec["pinned"] is False and rec["revision"] == "1" * 40 and "unpinned" not in rec
    with pytest.raises(WeightsError, match=r"not in the Hugging Face cache.*downloads are off.*--weights PATH"):
        load_model(card, f"hf:{REPO}@{COMMIT}/tiny.pth")
    with pytest.raises(WeightsError, match=r"name the file \(hf:me/my-ckpt/FILE\)"):
        load_model(dataclasses.replace(card, weights={}), "hf:me/my-ckpt")


def test_allow_unpinned_from_the_command_line_is_recorded(tmp_path, hub_card, ckpt):
    from satbench.cli.app import main

    lay_out_cache(tmp_path / "hf", REPO, COMMIT, {"tiny.pth": ckpt[0]})
    hub_card(sha256="ef" * 32)
    imgs = UCM_MINI / "images" / "airplane"
    base = ["extract", "--model", "satdino-hubtest-tiny", "--weights", f"hf:{REPO}", "--images", str(imgs), "--size", "32",
            "--device", "cpu", "--no-progress", "--output"]
    assert main([*base, str(tmp_path / "a.npy")]) == 2
    assert main([*base, str(tmp_path / "b.npy"), "--allow-unpinned"]) == 0
    side = json.loads((tmp_path / "b.json").read_text())
    w = json.dumps(side)
    assert '"unpinned": true' in w and COMMIT in w and REPO in w


def test_key_prefix_is_applied_only_when_the_card_names_it(tmp_path, hub_card, ckpt):
    from safetensors.torch import save_file

    _, model = ckpt
    sd = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, str(tmp_path / "model.safetensors"))
    lay_out_cache(tmp_path / "hf", "me/hf-style", "2" * 40, {"model.safetensors": (tmp_path / "model.safetensors").read_bytes()})
    lm = load_model(hub_card(key_prefix="model."), "hf:me/hf-style/model.safetensors")
    assert lm.weights.extras["key_prefix"] == "model."
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(lm.model(x), model(x), rtol=0, atol=0)
    with pytest.raises(WeightsError, match=r"unexpected keys: model\."):  # never guessed
        load_model(hub_card(), "hf:me/hf-style/model.safetensors")
    save_file({**sd, "classifier.weight": torch.zeros(2, 192)}, str(tmp_path / "folder.safetensors"))
    with pytest.raises(WeightsError, match=r"unexpected keys: classifier\.weight"):  # other keys still named
        load_model(hub_card(key_prefix="model."), str(tmp_path / "folder.safetensors"))


@pytest.mark.parametrize("entry,match", [
    ({"sha265": "x"}, r"unknown key weights\.pretrain\.sha265 \(did you mean: sha256"),
    ({"sha256": "ABC"}, r"weights\.pretrain: weights sha256 must be 64 lower-case hex digits"),
    ({"key_prefix": ""}, r"key_prefix must be a non-empty string"),
    ({"revision": 5}, r"weights\.pretrain\.revision must be a string"),
    ({"known_answer": {"image": "x.jpg", "size": 224}}, r"missing key weights\.pretrain\.known_answer\.cls_mean"),
    ({"known_answer": {"image": "../etc/passwd", "size": 2, "cls_mean": 0, "cls_std": 1, "cls_first": [0.1], "atol": 1e-4}},
     r"known_answer: image must be a path under satbench's bundled data"),
    ({"known_answer": {"image": "a.jpg", "size": 2, "cls_mean": 0, "cls_std": 1, "cls_first": "x", "atol": 1e-4}},
     r"cls_first must be a list of a number, got 'x'"),
])
def test_card_schema_for_weight_entries(tmp_path, monkeypatch, entry, match):
    data = yaml.safe_load(TINY.read_text())
    data["name"] = "satdino-badcard"
    data["weights"] = {"pretrain": {"filename": "x.pth", **entry}}
    (tmp_path / "satdino-badcard.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(tmp_path))
    with pytest.raises(SatbenchError, match=match):
        get_card("satdino-badcard")


def test_a_snapshot_link_leading_outside_the_hub_cache_is_refused_naming_it(tmp_path, hub_card, ckpt):
    """A snapshot entry is read only when it resolves inside the hub cache: /etc/passwd is never read as weights."""
    from satbench.errors import SatbenchError

    links = lay_out_cache(tmp_path / "hf", REPO, COMMIT, {"tiny.pth": ckpt[0]})
    outside = tmp_path / "elsewhere.pth"
    outside.write_bytes(ckpt[0])  # even the right bytes: the link itself is the problem
    links["tiny.pth"].unlink()
    links["tiny.pth"].symlink_to(outside)
    card = hub_card()
    with pytest.raises(SatbenchError, match=rf"hub cache entry {re.escape(str(links['tiny.pth']))} is a symlink to "
                                            rf"{re.escape(str(outside))}, outside the hub cache"):
        load_model(card, f"hf:{REPO}@{COMMIT}/tiny.pth")
    links["tiny.pth"].unlink()
    links["tiny.pth"].symlink_to("/etc/passwd")
    with pytest.raises(SatbenchError, match=r"is a symlink to /etc/passwd, outside the hub cache"):
        load_model(card, f"hf:{REPO}@{COMMIT}/tiny.pth")
