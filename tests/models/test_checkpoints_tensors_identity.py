"""Weights identity = the sha256 of the tensors: the same weights saved as .safetensors and as .pth are one
``weights.tensors_sha256`` (the file sha256 stays beside it), one leaderboard row and one suite identity; records
written before tensors_sha256 existed still group and compare by their file sha256."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from satbench.cli.app import main
from satbench.leaderboard import build_tables
from satbench.models.backbones.module import state_dict_sha256
from satbench.models.checkpoints import tensors_sha256
from satbench.models.registry import get_card
from satbench.models.weights import load_model
from satbench.suite.keys import RunKey, WeightsId, record_mismatch
from support.leaderboard_records import knn_record
from support.paths import CARDS

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _cards(monkeypatch):
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))


@pytest.fixture
def saved_both_ways(tmp_path) -> tuple[Path, Path]:
    """The weights of a seeded 2-block ViT-Tiny saved as ``tiny.safetensors`` and as ``tiny.pth`` (a flat state dict)."""
    from safetensors.torch import save_file

    model = load_model(get_card("satdino-test-tiny"), "random", seed=7).model
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    st, pth = tmp_path / "tiny.safetensors", tmp_path / "tiny.pth"
    save_file(sd, str(st))
    torch.save(dict(reversed(list(sd.items()))), pth)  # another key order in the file: the identity sorts keys
    return st, pth


def test_one_identity_for_the_same_tensors_in_two_formats(saved_both_ways):
    st, pth = saved_both_ways
    card = get_card("satdino-test-tiny")
    a, b = load_model(card, str(st)), load_model(card, str(pth))
    assert a.weights.sha256 != b.weights.sha256  # two files
    assert a.weights.tensors_sha256 == b.weights.tensors_sha256  # one set of tensors
    assert len(a.weights.tensors_sha256) == 64
    d = b.weights.as_dict()
    assert d["sha256"] == b.weights.sha256 and d["tensors_sha256"] == b.weights.tensors_sha256  # both recorded
    # the one hash function: a wrapped module's identity is the same function over its state dict
    assert state_dict_sha256(a.model) == a.weights.tensors_sha256 == tensors_sha256(a.model.state_dict())
    other = load_model(card, "random", seed=8)
    assert tensors_sha256(other.model.state_dict()) != a.weights.tensors_sha256
    assert "tensors_sha256" not in other.weights.as_dict()  # random init: identified by its seed


def test_the_hash_covers_name_dtype_shape_and_bytes():
    base = {"a": torch.zeros(2, 3), "b": torch.arange(4, dtype=torch.int64)}
    h = tensors_sha256(base)
    assert tensors_sha256(dict(reversed(list(base.items())))) == h  # key order in the dict does not matter
    assert tensors_sha256({"c": base["a"], "b": base["b"]}) != h  # name
    assert tensors_sha256({**base, "a": torch.zeros(2, 3, dtype=torch.float64)}) != h  # dtype
    assert tensors_sha256({**base, "a": torch.zeros(3, 2)}) != h  # shape, same bytes
    assert tensors_sha256({**base, "a": torch.zeros(2, 3).index_fill_(1, torch.tensor([1]), 1.0)}) != h  # bytes
    assert tensors_sha256({**base, "a": torch.zeros(3, 2).t()}) == tensors_sha256({**base, "a": torch.zeros(2, 3)})
    assert tensors_sha256({"s": torch.tensor(1.5), "e": torch.zeros(0)})  # 0-dim and empty tensors hash
    with pytest.raises(Exception, match="'x' is a int, not a tensor"):
        tensors_sha256({"x": 3})


def _weights(path: Path) -> dict:
    return load_model(get_card("satdino-test-tiny"), str(path)).weights.as_dict()


def test_one_leaderboard_row_for_both_files_and_an_older_record(saved_both_ways):
    st, pth = saved_both_ways
    ws, wp = _weights(st), _weights(pth)
    old = {k: v for k, v in wp.items() if k != "tensors_sha256"}  # a record written before tensors_sha256
    recs = [knn_record("satdino-test-tiny", "eurosat", 50.0, weights=old, date="2026-11-20T09:00:00"),
            knn_record("satdino-test-tiny", "eurosat", 51.0, weights=ws, date="2026-11-20T10:00:00"),
            knn_record("satdino-test-tiny", "eurosat", 52.0, weights=wp, date="2026-11-20T11:00:00")]
    table = build_tables(recs, "knn")[0]
    runs = [r for r in table.rows if r.kind == "run"]
    assert len(runs) == 1, [r.labels for r in runs]
    cell = runs[0].cells["eurosat"]
    assert cell.value == 52.0 and cell.runs == 3
    assert runs[0].labels["source"] == f"satbench, weights {ws['tensors_sha256'][:12]}"
    assert cell.record["weights"] == wp["sha256"]  # the file's sha256 stays what the cell links to
    # other tensors are another row
    other = dict(ws, tensors_sha256="c" * 64, sha256="d" * 64)
    table = build_tables(recs + [knn_record("satdino-test-tiny", "eurosat", 40.0, weights=other)], "knn")[0]
    assert len([r for r in table.rows if r.kind == "run"]) == 2


def _key(weights: WeightsId) -> RunKey:
    return RunKey(task="knn", model="satdino-test-tiny", weights=weights, protocol_hash="p" * 64, dataset="eurosat",
                  split_hashes={})


def _rec(weights: dict) -> dict:
    return {"task": "knn", "model": "satdino-test-tiny", "weights": weights, "protocol": {"hash": "p" * 64},
            "dataset": {"name": "eurosat", "split_hashes": {}}}


def test_one_suite_identity_for_both_files(saved_both_ways):
    st, pth = saved_both_ways
    ws, wp = _weights(st), _weights(pth)
    loaded_pth = WeightsId(sha256=wp["sha256"], tensors_sha256=wp["tensors_sha256"])
    assert record_mismatch(_rec(ws), _key(loaded_pth)) is None  # a .safetensors record stands for the .pth run
    # before loading only the file hash is known: another file is another run until the tensors are known
    assert "weights" in record_mismatch(_rec(ws), _key(WeightsId(sha256=wp["sha256"])))
    # an older record without tensors_sha256 compares by the file
    old = {k: v for k, v in ws.items() if k != "tensors_sha256"}
    assert record_mismatch(_rec(old), _key(WeightsId(sha256=ws["sha256"], tensors_sha256=ws["tensors_sha256"]))) is None
    assert "weights" in record_mismatch(_rec(old), _key(loaded_pth))
    # other tensors never match, whatever the file
    assert "weights" in record_mismatch(_rec(dict(ws, tensors_sha256="e" * 64, sha256=wp["sha256"])), _key(loaded_pth))


def test_the_suite_skips_a_run_recorded_from_the_other_file(saved_both_ways, tmp_path, capsys):
    st, pth = saved_both_ways
    res = tmp_path / "res"
    argv = ["suite", "--model", "satdino-test-tiny", "--tasks", "knn", "--datasets", "ucm-mini", "--num-workers", "0",
            "--no-progress", "--no-leaderboard", "--set", "knn.scales=0.125", "--set", "knn.k=5",
            "--results-dir", str(res)]
    assert main([*argv, "--weights", str(st)]) == 0
    first = capsys.readouterr().out
    assert "1 to run, 0 skipped" in first
    assert main([*argv, "--weights", str(pth)]) == 0
    second = capsys.readouterr().out
    assert "0 to run, 1 skipped" in second and "suite: 0 run, 1 skipped" in second
    recs = [json.loads(p.read_text()) for p in sorted(res.glob("*.json"))]
    assert len(recs) == 1 and recs[0]["weights"]["path"] == str(st)
