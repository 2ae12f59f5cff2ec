"""The one strict settings loader (satbench/config/settings.py): every protocol's params are typed; a misspelled key, a wrong
type or an impossible value is one line naming the protocol file and the key, before any work."""

from __future__ import annotations

import re

import pytest
import yaml

from satbench.cli.app import main
from satbench.errors import ProtocolError
from satbench.config.protocols import load_protocol
from satbench.runtime.resources import tasks_dir


def _variant(tmp_path, source: str, name: str, edit) -> str:
    data = yaml.safe_load((tasks_dir() / source).read_text())
    data["name"] = name
    edit(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


@pytest.mark.parametrize("edit, pattern", [
    (lambda d: d["params"].update(temprature=d["params"].pop("temperature")), r"unknown key temprature \(did you mean: temperature"),
    (lambda d: d["params"].update(k=20), r"k must be a list of an integer, got 20"),
    (lambda d: d["params"].update(resize_ratio=[256, 0]), r"every value of resize_ratio must be > 0"),
    (lambda d: d["params"].update(temperature=0), r"temperature must be > 0"),
    (lambda d: d["params"].update(k_report=7), r"k_report 7 is not one of k"),
    (lambda d: d["params"].update(metric="euclidean"), r"metric must be one of 'cosine'"),
    (lambda d: d.update(paramz={}), r"unknown top-level key paramz"),
])
def test_knn_protocols_are_strict(edit, pattern, tmp_path, capsys):
    path = _variant(tmp_path, "knn/satdino-knn-v1.yaml", "knn-variant", edit)
    code = main(["run", "--task", "knn", "--weights", "random", "--protocol", path, "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and re.search(pattern, err[0]), err
    assert "knn-variant" in err[0]  # the file is named


@pytest.mark.parametrize("source, edit, pattern", [
    ("linear/satdino-linear-v1.yaml", lambda d: d["params"].update(epochz=3), r"unknown key epochz"),
    ("linear/cached-linear-v1.yaml", lambda d: d["params"].update(lrs=[0.1, -1]), r"every value of lrs must be > 0"),
    ("segmentation/upernet-v1.yaml", lambda d: d["params"].update(iters="many"), r"iters must be an integer"),
])
def test_every_task_protocol_is_strict(source, edit, pattern, tmp_path):
    from satbench.eval.task import get_task

    path = _variant(tmp_path, source, "variant", edit)
    proto = load_protocol(path)
    task = get_task({"linear": "linear", "segmentation": "segmentation"}[proto.task])
    with pytest.raises(ProtocolError, match=pattern):
        proto.settings(task.settings_for(proto))


def test_shipped_protocols_load_and_keep_their_hashes():
    """Strictness changed no shipped protocol: the hashes existing records carry are unchanged."""
    pinned = {"satdino-knn-v1": "f6029dd49d98", "scalemae-knn-v1": "7a9b3c00b761", "satdino-linear-v1": "02b30ce2981d",
              "cached-linear-v1": "c75b587f83ee", "satdino-finetune-v1": "2fd45c4947e5"}  # as in the records of round 1
    assert {p: load_protocol(p).hash[:12] for p in pinned} == pinned
    from satbench.eval.task import list_tasks

    for task in list_tasks():
        proto = load_protocol(task.default_protocol)
        proto.settings(task.settings_for(proto))
