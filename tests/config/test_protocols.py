"""Protocol files (satbench/config/protocols.py): every top-level field is typed (``version`` a positive integer,
``description`` a string), and a protocol file must be valid on its own: a command-line override never hides a bad
value in the file (whose hash the record carries as ``base_hash``)."""

from __future__ import annotations

import re

import pytest
import yaml

from satbench.cli.app import main
from satbench.errors import ProtocolError
from satbench.eval.knn_settings import KnnSettings
from satbench.config.protocols import list_protocols, load_protocol
from satbench.runtime.resources import tasks_dir


def _variant(tmp_path, name: str, edit, source: str = "knn/satdino-knn-v1.yaml") -> str:
    data = yaml.safe_load((tasks_dir() / source).read_text())
    data["name"] = name
    edit(data)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


@pytest.mark.parametrize("version", ["one", "1", 1.5, 0, -2, True, None, [1]])
def test_version_must_be_a_positive_integer(version, tmp_path):
    path = _variant(tmp_path, "advversion", lambda d: d.update(version=version))
    with pytest.raises(ProtocolError, match=r"advversion\.yaml: version is .*, expected a positive integer"):
        load_protocol(path)


def test_description_must_be_a_string(tmp_path):
    path = _variant(tmp_path, "advdesc", lambda d: d.update(description={"a": 1}))
    with pytest.raises(ProtocolError, match=r"advdesc\.yaml: description must be a string"):
        load_protocol(path)


def test_shipped_protocols_keep_their_versions():
    versions = {p.name: p.content.get("version") for p in list_protocols()}
    assert versions["satdino-knn-v1"] == 1 and versions["scalemae-knn-v2"] == 2
    assert all(isinstance(v, int) and v >= 1 for v in versions.values() if v is not None)


def test_version_one_is_refused_by_run_before_any_work(tmp_path, capsys):
    path = _variant(tmp_path, "advversion", lambda d: d.update(version="one"))
    res = tmp_path / "res"
    code = main(["run", "--task", "knn", "--weights", "random", "--protocol", path, "--scales", "0.125",
                 "--no-progress", "--results-dir", str(res)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and re.search(r"advversion\.yaml: version is 'one'", err[0]), err
    assert not res.exists() or not list(res.glob("*.json"))


def test_an_override_does_not_hide_a_bad_value_in_the_file(tmp_path):
    path = _variant(tmp_path, "advscales", lambda d: d["params"].update(scales=[-0.5]))
    proto = load_protocol(path).with_overrides(scales=[0.125])
    assert proto.params["scales"] == [0.125]
    with pytest.raises(ProtocolError, match=r"protocol advscales \(.*advscales\.yaml\): every value of scales must "
                                            r"be > 0"):
        proto.settings(KnnSettings)
    with pytest.raises(ProtocolError, match=r"advscales\.yaml\): every value of scales must be > 0"):
        proto.with_overrides(k=[5], k_report=5).settings(KnnSettings)  # overrides on overrides: still the file's


def test_run_refuses_a_bad_file_even_with_an_override(tmp_path, capsys):
    path = _variant(tmp_path, "advscales", lambda d: d["params"].update(scales=[-0.5]))
    res = tmp_path / "res"
    code = main(["run", "--task", "knn", "--weights", "random", "--protocol", path, "--scales", "0.125",
                 "--no-progress", "--results-dir", str(res)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and re.search(r"advscales\.yaml\): every value of scales must be > 0", err[0])
    assert not res.exists() or not list(res.glob("*.json"))


def test_a_valid_file_with_overrides_keeps_its_base_hash():
    base = load_protocol("satdino-knn-v1")
    proto = base.with_overrides(scales=[0.125], k=[5], k_report=5)
    settings = proto.settings(KnnSettings)
    assert list(settings.scales) == [0.125] and proto.base_hash == base.hash and proto.hash != base.hash
    assert proto.overrides == {"scales": [0.125], "k": [5], "k_report": 5}
    assert base.hash[:12] == "f6029dd49d98"
