"""Model cards are strict (a leaf module, satbench/models/cards.py) and families check what they own (options, dimensions):
a bad card is named and skipped, never crashing the registry; a card's dimensions are what is built."""

from __future__ import annotations

import re

import pytest

from satbench.cli.app import main
from satbench.models.registry import card_problems, get_card, list_cards

GOOD = """name: {name}
family: satdino
arch: vit_small
patch_size: 16
embed_dim: 384
depth: {depth}
num_heads: 6
feature_dim: 384
normalization: fmow
params_expected: 21590400
params_exclude: [pos_embed]
{extra}"""


def _folder(tmp_path, monkeypatch, **cards):
    folder = tmp_path / "cards"
    folder.mkdir(exist_ok=True)
    for name, text in cards.items():
        (folder / f"{name}.yaml").write_text(text)
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(folder))
    return folder


def test_top_level_depth_is_what_gets_built(tmp_path, monkeypatch, capsys):
    """A card saying depth 4 builds 4 blocks and its parameter count no longer matches the paper's (params_ok False)."""
    _folder(tmp_path, monkeypatch, shallow=GOOD.format(name="shallow", depth=4, extra=""))
    from satbench.models.model_table import model_rows

    row = next(r for r in model_rows(flops=False) if r["model"] == "shallow")
    assert row["params_ok"] is False and row["params_M"] < 21.59
    import satbench

    model = satbench.load_model("shallow", weights="random")
    assert len(model.loaded.model.blocks) == 4


@pytest.mark.parametrize("extra, pattern", [
    ("pool: mean\n", r"key pool belongs under options:"),
    ("options: {pool: mean}\n", r"option pool is not a build option of the satdino family"),
    ("options: {attn_impl: flash}\n", r"option attn_impl must be one of 'matmul', 'sdpa'"),
    ("poool: 1\n", r"unknown key poool"),
    ("weights: {pretrain: {filename: x.pth, sha: abc}}\n", r"unknown key weights.pretrain.sha"),
    ("paper: {depth: 4}\n", r"unknown key paper\.depth"),
    ("paper: {params_m: lots}\n", r"paper\.params_m must be a number, got 'lots'"),
    ("paper: {fmow_linear_top1: 173.5}\n", r"paper\.fmow_linear_top1 must be <= 100"),
    ("paper: [21.59]\n", r"paper must be a mapping"),
])
def test_bad_card_is_named_and_skipped_never_crashing_models(extra, pattern, tmp_path, monkeypatch, capsys):
    folder = _folder(tmp_path, monkeypatch, bad=GOOD.format(name="bad", depth=12, extra=extra),
                     good=GOOD.format(name="good", depth=12, extra=""))
    problems = card_problems()
    assert list(problems) == [str(folder / "bad.yaml")] and re.search(pattern, problems[str(folder / "bad.yaml")])
    assert "good" in {c.name for c in list_cards()} and "bad" not in {c.name for c in list_cards()}
    assert main(["models", "--no-flops"]) == 0  # the listing works, the bad card is named on stderr
    out, err = capsys.readouterr()
    assert "good" in out and "satdino-vit_small-16" in out and re.search(pattern, err)
    with pytest.raises(Exception, match=pattern.replace("\\", "\\")):
        get_card("bad")  # resolving the bad card itself gives its own error


def test_card_dimensions_must_agree_with_the_arch(tmp_path, monkeypatch):
    folder = _folder(tmp_path, monkeypatch, wide=GOOD.format(name="wide", depth=12, extra="").replace(
        "embed_dim: 384", "embed_dim: 512"))
    assert "embed_dim 512 contradicts arch vit_small" in card_problems()[str(folder / "wide.yaml")]


def test_families_declare_their_capabilities():
    from satbench.models.backbones import FAMILIES

    assert FAMILIES["scalemae"].takes_input_res and not FAMILIES["satdino"].takes_input_res
    assert FAMILIES["scalemae"].input_res("224/size", 112) == 2.0
    assert {"attn_impl", "pos_interp"} <= set(FAMILIES["satdino"].options)
    assert "attn_impl" in FAMILIES["satmae"].options and "pos_interp" not in FAMILIES["satmae"].options
    assert "gsd_register" in FAMILIES["satdino"].layer_decay_embedding_names
    assert FAMILIES["timm"].name_prefix == "timm:"


def test_paper_block_is_typed_and_kept_as_given():
    """The shipped cards' paper figures load unchanged (the keys they give, the values they give)."""
    assert get_card("satdino-vit_small-16").paper == {"params_m": 21.59, "gflops": 8.54, "fmow_linear_top1": 72.75}
    assert get_card("satmae-vit_large-16").paper == {"params_m": 303.3, "fmow_finetune_top1": 77.78}
    assert card_problems() == {}
