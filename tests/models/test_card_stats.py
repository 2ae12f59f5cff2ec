"""The shipped cards' params and GFLOPs are stored data (satbench/models/card_stats.json), checked here against a
fresh build of every shipped card; an edited or extra card is built instead of being given stale figures."""

from __future__ import annotations

import shutil

import pytest

from satbench.models import card_stats as cs
from satbench.models.registry import load_card_file
from satbench.runtime.resources import models_dir

SHIPPED = sorted(models_dir().glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_stored_figures_are_what_a_build_counts(path):
    """Regenerate with `python -m satbench.models.card_stats` when a card or a family changes."""
    card = load_card_file(path)  # the family checks still pass for the stored file
    stored = cs.stored_stats(card)
    assert stored is not None, f"{path.name} has no current entry in card_stats.json (card edited?)"
    built = cs.compute_stats(card)
    assert stored["params"] == built["params"]
    assert stored["gflops"] == pytest.approx(built["gflops"], abs=1e-4)
    if card.params_expected is not None:
        assert stored["params"] == card.params_expected


def test_the_stored_figures_agree_with_the_papers():
    """SatDINO ViT-S/16: 21.59 M params and 8.52 GFLOPs, as the spec (section 1.3) counts them."""
    card = load_card_file(models_dir() / "satdino-vit_small-16.yaml")
    stored = cs.stored_stats(card)
    assert round(stored["params"] / 1e6, 2) == 21.59 and round(stored["gflops"], 2) == 8.52


def test_an_edited_card_is_built_not_given_stale_figures(tmp_path, monkeypatch):
    folder = tmp_path / "cards"
    folder.mkdir()
    text = (models_dir() / "satdino-vit_small-16.yaml").read_text()
    (folder / "satdino-vit_small-16.yaml").write_text(text.replace("depth: 12", "depth: 4"))
    card = load_card_file(folder / "satdino-vit_small-16.yaml")
    assert cs.stored_stats(card) is None
    assert cs.card_stats(card, flops=False)["params"] < 21590400


def test_an_extra_card_folder_goes_through_the_full_registry(tmp_path, monkeypatch):
    from satbench.models.model_table import model_rows, shipped_cards_only

    assert [c.name for c in shipped_cards_only()] == sorted(load_card_file(p).name for p in SHIPPED)
    folder = tmp_path / "cards"
    folder.mkdir()
    shutil.copy(models_dir() / "satdino-vit_small-16.yaml", folder / "mine.yaml")
    (folder / "mine.yaml").write_text((folder / "mine.yaml").read_text().replace(
        "name: satdino-vit_small-16", "name: mine"))
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(folder))
    assert shipped_cards_only() is None
    rows = {r["model"]: r for r in model_rows(flops=False)}
    assert rows["mine"]["params_M"] == rows["satdino-vit_small-16"]["params_M"] == 21.59
