"""`satbench verify`: the known-answer test catches a weight file that loads but is not the card's.

The checkpoint is made here (a seeded 2-block ViT-Tiny/16 SatDINO); `verify --write` makes the entry into a
copy of its card; the right file passes, a file with one perturbed tensor (still loads strictly) fails.
"""

from __future__ import annotations


import pytest
import torch
import yaml

from satbench.models.backbones.satdino import build_satdino
from satbench.cli.app import main
from satbench.errors import WeightsError
from satbench.models.registry import _cards_in, get_card
from satbench.models.verify import DEFAULT_IMAGE, compute_stats, known_answer_entry, verify_weights
from support.paths import TINY_CARD, UCM_MINI

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = TINY_CARD


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A card folder holding a tiny card (no known answer yet) and the right and a perturbed checkpoint."""
    torch.manual_seed(11)
    sd = build_satdino(arch="vit_tiny", patch_size=16, depth=2).state_dict()
    good = tmp_path / "good.pth"
    torch.save({"teacher": sd}, good)
    bad_sd = dict(sd)
    g = torch.Generator().manual_seed(0)
    bad_sd["blocks.1.attn.proj.weight"] = sd["blocks.1.attn.proj.weight"] + 0.01 * torch.randn(
        sd["blocks.1.attn.proj.weight"].shape, generator=g)
    bad = tmp_path / "bad.pth"
    torch.save({"teacher": bad_sd}, bad)
    cards = tmp_path / "cards"
    cards.mkdir()
    data = yaml.safe_load(TINY.read_text())
    data["name"] = "satdino-kat-tiny"
    data["weights"] = {"pretrain": {"filename": "good.pth", "sha256": ""}}
    (cards / "satdino-kat-tiny.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(cards))
    return cards, good, bad


def test_write_then_verify_catches_a_perturbed_file(tmp_path, setup, capsys):
    cards, good, bad = setup
    card_file = cards / "satdino-kat-tiny.yaml"
    before = card_file.read_text()
    copy = tmp_path / "copy.yaml"
    assert main(["verify", "satdino-kat-tiny", "--weights", str(good), "--write", "--out", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "known_answer:" in out and DEFAULT_IMAGE in out
    assert card_file.read_text() == before  # the card itself is never edited
    written = yaml.safe_load(copy.read_text())
    ka = written["weights"]["pretrain"]["known_answer"]
    assert ka["image"] == DEFAULT_IMAGE and ka["size"] == 224 and len(ka["cls_first"]) == 8 and ka["atol"] == 1e-4
    assert len(written["weights"]["pretrain"]["sha256"]) == 64  # the unknown sha256 was filled in the copy
    card_file.write_text(copy.read_text())  # the maintainer applies the reviewed copy
    _cards_in.cache_clear()  # (a new process would read it afresh)
    assert main(["verify", "satdino-kat-tiny", "--weights", str(good)]) == 0
    assert capsys.readouterr().out.strip().endswith("ok (all within atol 0.0001)")
    # a file given by path is the user's own (no sha256 pin applies): the known answer is what catches it
    code = main(["verify", "satdino-kat-tiny", "--weights", str(bad)])
    err = capsys.readouterr().err
    assert code == 2 and "known-answer check failed for satdino-kat-tiny (pretrain)" in err
    assert "the file loads but is not the weights the card describes" in err


def test_api_and_errors(tmp_path, setup):
    cards, good, _ = setup
    card = get_card("satdino-kat-tiny")
    with pytest.raises(WeightsError, match=r"no known answer for its pretrain weights.*--write"):
        verify_weights(card, str(good))
    from satbench.models.weights import load_model

    loaded = load_model(card, str(good))
    entry = known_answer_entry(loaded)
    again = compute_stats(loaded, entry["image"], entry["size"])
    assert abs(again["cls_mean"] - entry["cls_mean"]) < 1e-6  # deterministic on this machine
    other = compute_stats(loaded, "ucm-mini/images/beach/" + sorted(
        p.name for p in (UCM_MINI / "images" / "beach").iterdir())[0], 224)
    # another image gives other values (mean and std of a LayerNormed CLS stay near 0 and 1 for an untrained norm
    # layer: the first values carry the signal)
    assert max(abs(a - b) for a, b in zip(other["cls_first"], entry["cls_first"])) > 1e-2


def test_out_never_targets_the_shipped_cards(tmp_path, capsys):
    from satbench.runtime.resources import models_dir

    card = models_dir() / "satdino-vit_small-16.yaml"
    before = card.read_text()
    assert main(["verify", "satdino-vit_small-16", "--weights", str(tmp_path / "w.pth"), "--write", "--out", str(card)]) == 2
    assert "refusing to write into the shipped model cards" in capsys.readouterr().err
    assert card.read_text() == before
    assert main(["verify", "satdino-vit_small-16", "--out", str(tmp_path / "x.yaml")]) == 2
    assert "--out applies with --write only" in capsys.readouterr().err


def test_write_refuses_random_weights(tmp_path, capsys):
    """A known answer belongs to a weight file: `--write --weights random` would print an entry with sha256 null."""
    assert main(["verify", "satdino-vit_small-16", "--weights", "random", "--write"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--weights random is not one" in err[0]
