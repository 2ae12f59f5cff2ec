"""Baselines exact to the last digit: SatMAE's and Scale-MAE's normalisation tables and Scale-MAE's input_res in extract.

Every value below is pinned to the official source it was read from (file, line, commit), read from the repositories
themselves (sustainlab-group/SatMAE at e31c11fa1bef6f9a9aa3eb49e8637c8b8952ba5e; bair-climate-initiative/scale-mae at
89280d830037ff27c20459cdab03e01e633e29bb). The SatDINO protocols' hashes and the v1 Scale-MAE protocol stay as they
were (existing records keep hashing to them); v2 differs from v1 only in its normalisation table.

CPU note: Scale-MAE forward passes use the reduced-size variant of tests/backbones/test_baselines.py (embed 64, depth 2) built from
the real card: the code path is ViT-L's.
"""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest

from satbench.data.catalog import get_dataset_spec
import torch

from satbench.cli.app import main
from satbench.errors import ProtocolError
from satbench.eval.knn_protocols import SCALEMAE_KNN_PROTOCOL, build_scale_entries, protocol_normalization
from satbench.data.normalization import PRESETS, get_normalization
from satbench.config.protocols import load_protocol
from satbench.models.registry import get_card
from satbench.runtime.resources import bundled_data_dir

UCM = bundled_data_dir() / "ucm-mini"

pytestmark = pytest.mark.usefixtures("one_thread")

# --------------------------------------------------------------------------------------------------------------------
# The official values
# --------------------------------------------------------------------------------------------------------------------
# sustainlab-group/SatMAE util/datasets.py lines 94-95 (CustomDatasetFromImages.mean / .std), commit e31c11f
# (file unchanged since b182634c4455a847676213f69e53f5ea3abad821); the same lists at lines 132-133 and 233-234.
SATMAE_FMOW_MEAN = (0.4182007312774658, 0.4214799106121063, 0.3991275727748871)
SATMAE_FMOW_STD = (0.28774282336235046, 0.27541765570640564, 0.2764017581939697)

# bair-climate-initiative/scale-mae, commit 89280d8 (dataloader files last changed in 4b00948e9d4b); satbench dataset
# name -> (mean, std, source). Scale-MAE's ids in mae/dataloaders/utils.py lines 23-33 (dataset_stats_lookup) are
# "eurosat", "resisc", "ucmerced" and "whu-rs19".
SCALEMAE_TABLES = {
    # mae/dataloaders/eurosat.py lines 3-12 (EUROSAT_DATASET_STATS)
    "eurosat": ((0.34436897, 0.38029233, 0.40777751), (0.20368513, 0.13663637, 0.11484352)),
    # mae/dataloaders/resic45.py lines 10-11 (RESIC_DATASET_STATS; every digit the file has)
    "resisc45": ((0.368, 0.381, 0.3436), (0.2035, 0.1854, 0.1849)),
    # mae/dataloaders/ucmerced.py lines 6-7 (UCMERCED_DATASET_STATS; every digit the file has)
    "uc_merced": ((0.4842, 0.4901, 0.4505), (0.2180, 0.2021, 0.1958)),
    # mae/dataloaders/whurs.py lines 4-5 (WHURS_DATASET_STATS)
    "whu-rs19": ((0.42647115, 0.44830369, 0.40256118), (0.24203978, 0.21878441, 0.22890343)),
}
# mae/dataloaders/fmow.py lines 8-10 (FMOW_DATASET_STATS) = ImageNet's; mae/config/fmow.yaml lines 6-7 the same.
SCALEMAE_FMOW = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))

# Protocol hashes before this change (records made with them must keep hashing to them).
FROZEN_HASHES = {
    "satdino-knn-v1": "f6029dd49d984c278b6f18733528631ca5edfb69f5347a79303c3791a7958539",
    "satdino-linear-v1": "02b30ce2981d50abf6e2fb47fa38a999c351625fac4ecb6c0c918b3a36dcdb9a",
    "cached-linear-v1": "c75b587f83ee50004b395deb6e8bf0b71e756042e6a398f3a0226fb787748d7a",
    "satdino-finetune-v1": "2fd45c4947e54c8df755e2ccc7d82c93fb750f082299e963d1126b9eef2d2928",
    "scalemae-knn-v1": "7a9b3c00b76156f3e1bc4422fa54d816112c4f029118b4ad01b0b23b30b68b3b",
}


# --------------------------------------------------------------------------------------------------------------------
# SatMAE
# --------------------------------------------------------------------------------------------------------------------
def test_satmae_card_uses_the_official_statistics_exactly():
    card = get_card("satmae-vit_large-16")
    assert card.normalization == "satmae-fmow-exact"
    assert card.norm.mean == SATMAE_FMOW_MEAN and card.norm.std == SATMAE_FMOW_STD
    # float32 as torch Normalize / satbench's FeatureExtractor hold them: the same float32 numbers as the official lists
    assert torch.equal(torch.tensor(card.norm.mean), torch.tensor(list(SATMAE_FMOW_MEAN)))
    # the legacy 4-decimal preset still resolves to what old records were computed with
    legacy = get_normalization("satmae-fmow")
    assert legacy.mean == (0.4182, 0.4215, 0.3991) and legacy.std == (0.2877, 0.2754, 0.2764)
    assert max(abs(a - b) for a, b in zip(legacy.mean + legacy.std, SATMAE_FMOW_MEAN + SATMAE_FMOW_STD)) > 1e-5


def test_scalemae_card_uses_imagenet_as_scalemae_does_for_fmow():
    card = get_card("scalemae-vit_large-16")
    assert card.normalization == "imagenet"
    assert (card.norm.mean, card.norm.std) == SCALEMAE_FMOW


# --------------------------------------------------------------------------------------------------------------------
# Scale-MAE's kNN protocol: v2 exact, v1 kept
# --------------------------------------------------------------------------------------------------------------------
def test_existing_protocol_hashes_are_unchanged():
    for name, h in FROZEN_HASHES.items():
        assert load_protocol(name).hash == h, name


def test_v2_table_is_scalemae_exactly_and_v2_differs_from_v1_only_there():
    v1, v2 = load_protocol("scalemae-knn-v1"), load_protocol("scalemae-knn-v2")
    assert SCALEMAE_KNN_PROTOCOL == "scalemae-knn-v2" and v2.content["version"] == 2
    table = v2.get("normalization_table")
    assert set(table) == set(SCALEMAE_TABLES)
    for ds, (mean, std) in SCALEMAE_TABLES.items():
        assert tuple(table[ds]["mean"]) == mean and tuple(table[ds]["std"]) == std, ds
    assert v1.get("normalization_table") == {"eurosat": {"mean": [0.3444, 0.3803, 0.4078], "std": [0.2037, 0.1366, 0.1148]}}
    a, b = copy.deepcopy(v1.content), copy.deepcopy(v2.content)
    for c in (a, b):
        for key in ("name", "version", "description"):
            c.pop(key)
        c["params"].pop("normalization_table")
    assert a == b
    # UC Merced's Resize((256, 256)) before ToTensor: mae/dataloaders/utils.py lines 181-182
    assert v2.get("native_resize") == {"uc_merced": 256} and v2.get("input_res") == "224/size"


class _DS:
    def __init__(self, name: str, native: int = 256):
        self.protocol_name = name
        self.name = name
        self.native_size = native
        self.normalization = None


@pytest.mark.parametrize("ds", sorted(SCALEMAE_TABLES))
def test_v2_normalization_per_dataset(ds):
    n = protocol_normalization(load_protocol("scalemae-knn-v2"), _DS(ds))
    assert n.name == f"scalemae-knn-v2:{ds}" and (n.mean, n.std) == SCALEMAE_TABLES[ds]


@pytest.mark.parametrize("ds", ["rs_c11", "siri-whu"])
def test_datasets_without_scalemae_statistics_are_a_clear_error(ds):
    with pytest.raises(ProtocolError, match=rf"scalemae-knn-v2 has no normalization statistics for '{ds}'.*--normalization"):
        protocol_normalization(load_protocol("scalemae-knn-v2"), _DS(ds))


def _small_scalemae():
    return dataclasses.replace(get_card("scalemae-vit_large-16"), name="test-scalemae-d2", embed_dim=64, num_heads=4,
                               depth=2, feature_dim=64, params_expected=None, weights={})


def test_v2_knn_end_to_end_and_the_leaderboard_reads_v1_and_v2(ucm_mini, tmp_path):
    from satbench.eval.task_knn import run_knn
    from satbench.leaderboard import build_tables, render
    from satbench.records.results import read_records, write_record
    from satbench.models.weights import load_model

    loaded = load_model(_small_scalemae(), "random", seed=0)
    recs = {}
    for name in ("scalemae-knn-v1", "scalemae-knn-v2"):
        proto = load_protocol(name).with_overrides(scales=[0.125])
        norm = get_dataset_spec("uc_merced").norm if name.endswith("v1") else None  # v1 knows EuroSAT only
        rec = run_knn(loaded, ucm_mini, proto, device="cpu", progress=False, backend="faiss", normalization=norm,
                      num_workers=0)
        write_record(rec, tmp_path)
        recs[name] = rec
    v2 = recs["scalemae-knn-v2"]
    used = v2["dataset"]["normalization_used"]
    assert used["name"] == "scalemae-knn-v2:uc_merced"
    assert (tuple(used["mean"]), tuple(used["std"])) == SCALEMAE_TABLES["uc_merced"]
    assert v2["metrics"]["per_scale"][0]["input_res"] == 224 / 32
    assert v2["protocol"]["name"] == "scalemae-knn-v2"
    records = read_records(tmp_path, task="knn")
    assert {r["protocol"]["name"] for r in records} == {"scalemae-knn-v1", "scalemae-knn-v2"}
    text = "\n".join(render(t) for t in build_tables(records, "knn"))
    assert "scalemae-knn-v1" in text and "scalemae-knn-v2" in text


def test_v2_views_match_v1_views():
    """Only the statistics changed: the same sizes, transforms and input_res per scale."""
    v1 = build_scale_entries(load_protocol("scalemae-knn-v1"), _DS("uc_merced"), "scalemae")
    v2 = build_scale_entries(load_protocol("scalemae-knn-v2"), _DS("uc_merced"), "scalemae")
    assert [e.as_dict() for e in v1] == [e.as_dict() for e in v2]
    assert [e.view.spec for e in v1] == [e.view.spec for e in v2]


# --------------------------------------------------------------------------------------------------------------------
# satbench extract --input-res
# --------------------------------------------------------------------------------------------------------------------
@pytest.fixture
def small_scalemae_card(monkeypatch):
    import satbench.models.registry as registry

    real = registry.get_card
    monkeypatch.setattr(registry, "get_card", lambda n: _small_scalemae() if n == "scalemae-vit_large-16" else real(n))


def _four_images(tmp_path):
    """Four real images (two classes) of the bundled UC Merced subset."""
    import shutil

    d = tmp_path / "four"
    if not d.exists():
        d.mkdir()
        for cls in ("airplane", "forest"):
            for f in sorted((UCM / "images" / cls).glob("*.jpg"))[:2]:
                shutil.copy(f, d / f"{cls}_{f.name}")
    return d


def _extract(tmp_path, name: str, *extra: str, model: str = "scalemae-vit_large-16", size: str = "112"):
    out = tmp_path / f"{name}.npy"
    rc = main(["extract", "--model", model, "--weights", "random", "--images", str(_four_images(tmp_path)), "--size",
               size, "--output", str(out), "--no-progress", "--device", "cpu", *extra])
    assert rc == 0
    return np.load(out), json.loads(out.with_suffix(".json").read_text())


def test_extract_input_res_default_values_and_sidecar(tmp_path, small_scalemae_card):
    default, side_d = _extract(tmp_path, "default")
    assert side_d["input_res"] == 2.0 and side_d["input_res_policy"] == "224/size (protocol scalemae-knn-v2)"
    two, side_2 = _extract(tmp_path, "two", "--input-res", "2.0")
    proto, side_p = _extract(tmp_path, "proto", "--input-res", "protocol")
    one, side_1 = _extract(tmp_path, "one", "--input-res", "1.0")
    assert side_2["input_res"] == 2.0 and side_2["input_res_policy"] == "value"
    assert side_1["input_res"] == 1.0 and side_p == {**side_d, "features": side_p["features"], "seconds": side_p["seconds"]}
    assert np.array_equal(default, two) and np.array_equal(default, proto)
    # 112 px with input_res 2.0 (Scale-MAE's eval_gsd) is not 112 px with input_res 1.0 (the official default)
    assert default.shape == one.shape and np.abs(default - one).max() > 1e-3
    _, side_224 = _extract(tmp_path, "s224", size="224")
    assert side_224["input_res"] == 1.0  # 224 / 224


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "abc"])
def test_extract_input_res_bad_values(bad, tmp_path, small_scalemae_card, capsys):
    rc = main(["extract", "--model", "scalemae-vit_large-16", "--weights", "random", "--images", str(UCM / "val.txt"),
               "--size", "32", "--output", str(tmp_path / "o.npy"), "--no-progress", "--input-res", bad])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "--input-res" in err[0] and "positive number" in err[0]
    assert not (tmp_path / "o.npy").exists()


def test_extract_input_res_is_scalemae_only(tmp_path, capsys, monkeypatch):
    from bad_inputs.make_corpus import CARDS

    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))
    _, side = _extract(tmp_path, "satdino", model="satdino-test-tiny", size="32")
    assert side["input_res"] is None and side["input_res_policy"] is None
    rc = main(["extract", "--model", "satdino-test-tiny", "--weights", "random", "--images", str(UCM / "val.txt"),
               "--size", "32", "--output", str(tmp_path / "o.npy"), "--no-progress", "--input-res", "1.0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "--input-res applies to backbones that take an input resolution" in err[0]


def test_extract_help_states_the_default(capsys):
    with pytest.raises(SystemExit):
        main(["extract", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--input-res VALUE|protocol" in out
    assert "Default 'protocol': 224/size, as Scale-MAE's own kNN protocol scalemae-knn-v2" in out
