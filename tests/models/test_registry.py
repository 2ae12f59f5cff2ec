"""Registry cards, protocols hashing, atomic record writes, the feature cache."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import yaml

from satbench.eval.cache import FeatureCache
from satbench.errors import ProtocolError, SatbenchError, UnknownNameError
from satbench.io.atomic import atomic_write_json
from satbench.io.hashing import canonical_hash
from satbench.data.normalization import PRESETS, parse_normalization
from satbench.models.registry import get_card, list_cards, load_card_file as _load_card
from satbench.records.results import make_record, read_records, write_record


def test_cards_declare_everything():
    names = {c.name for c in list_cards()}
    assert {"satdino-vit_small-16", "satdino-vit_small-8", "satdino-vit_base-16"} <= names
    c = get_card("satdino-vit_small-8")
    assert (c.patch_size, c.embed_dim, c.feature_dim, c.params_expected) == (8, 384, 384, 21_369_216)
    assert c.weights["pretrain"] == {"hf_repo": "strakajk/satdino-vit_small-8", "filename": "satdino-vit_small-8.pth", "sha256": ""}
    assert c.weights["finetune"]["filename"] == "satdino-vit_small-8-finetune.pth"
    assert c.norm.mean == (0.433, 0.436, 0.407) and c.norm.std == (0.198, 0.193, 0.195)


def test_normalization_tables_are_the_official_rounded_values():
    from satbench.data.catalog import get_dataset_spec

    eurosat = get_dataset_spec("eurosat").norm
    assert eurosat.name == "eurosat" and eurosat.mean == (0.343, 0.379, 0.406) and eurosat.std == (0.168, 0.110, 0.091)
    assert get_dataset_spec("siri-whu").norm.std == (0.106, 0.101, 0.107)
    assert get_dataset_spec("whu-rs19").norm.mean == (0.424, 0.446, 0.401)
    assert get_dataset_spec("ucm-mini").norm == get_dataset_spec("uc_merced").norm  # a subset uses its parent's table
    assert PRESETS["fmow"].mean == (0.433, 0.436, 0.407) and PRESETS["fmow"].std == (0.198, 0.193, 0.195)
    assert parse_normalization("mean=0.1,0.2,0.3;std=0.4,0.5,0.6").std == (0.4, 0.5, 0.6)
    with pytest.raises(UnknownNameError):
        parse_normalization("mean=1,2;std=3")


def test_bad_cards_are_rejected(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text(yaml.safe_dump({"name": "x", "family": "satdino"}))
    with pytest.raises(SatbenchError, match="missing key patch_size"):
        _load_card(p)
    p.write_text("name: [unclosed")
    with pytest.raises(SatbenchError, match="not valid YAML"):
        _load_card(p)


def test_unknown_model_lists_close_matches():
    with pytest.raises(UnknownNameError, match="did you mean: satdino-vit_base-16"):
        get_card("satdino-vit-base16")


def _record(**kw):
    base = dict(task="knn", model="m", weights={"sha256": "ab" * 32}, protocol={"name": "p", "hash": "h"},
                dataset={"name": "ucm-mini"}, metrics={"a": 1})
    base.update(kw)
    return make_record(**base)


def test_records_are_atomic_and_never_overwrite(tmp_path):
    paths = {write_record(_record(), tmp_path) for _ in range(5)}
    assert len(paths) == 5
    recs = read_records(tmp_path)
    assert len(recs) == 5 and all(r["provenance"]["satbench_version"] for r in recs)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    r = _record()
    r["id"] = "fixed"
    r["provenance"]["date"] = "2026-01-01T00:00:00+00:00"
    a, b = write_record(r, tmp_path), write_record(r, tmp_path)
    assert a != b and json.loads(a.read_text()) == json.loads(b.read_text())


def test_unwritable_results_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SatbenchError, match="not a directory"):
        write_record(_record(), blocker)


def test_canonical_hash_ignores_key_order():
    assert canonical_hash({"a": 1, "b": [1, 2]}) == canonical_hash({"b": [1, 2], "a": 1})
    assert canonical_hash({"a": 1}) != canonical_hash({"a": 2})


def test_feature_cache_roundtrip_and_clear(tmp_path):
    c = FeatureCache(tmp_path / "c")
    key = {"model": "m", "view": {"size": 32}}
    assert c.get(key) is None
    arr = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    c.put(key, arr, {"n": 5})
    np.testing.assert_array_equal(c.get(key), arr)
    assert c.hits == 1 and c.misses == 1 and len(c.entries()) == 1
    assert FeatureCache(tmp_path / "c", enabled=False).get(key) is None
    assert c.clear() == 1 and c.get(key) is None


def test_atomic_write_exclusive(tmp_path):
    atomic_write_json(tmp_path / "a.json", {"x": 1}, exclusive=True)
    with pytest.raises(FileExistsError):
        atomic_write_json(tmp_path / "a.json", {"x": 2}, exclusive=True)
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}


def test_published_files_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        p = atomic_write_json(tmp_path / "r.json", {"x": 1})
    finally:
        os.umask(old)
    assert oct(p.stat().st_mode & 0o777) == oct(0o644)
