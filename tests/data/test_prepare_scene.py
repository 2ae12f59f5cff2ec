"""`satbench data prepare` / `data check` on fake raw layouts built from the bundled real UC Merced images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from satbench.cli.app import main
from satbench.data.prepare_scene import find_class_root, prepare_scene
from satbench.data.scene import open_scene_dataset
from satbench.errors import DataError
from satbench.runtime.resources import bundled_data_dir

UCM = bundled_data_dir() / "ucm-mini"
CLASSES = ["agricultural", "airplane", "beach"]


def fake_ucmerced_raw(tmp_path: Path, per_class: int = 3) -> tuple[Path, Path]:
    """UCMerced_LandUse/Images/<class>/<stem>.tif re-saved from bundled JPEGs, plus a tiny split folder."""
    raw = tmp_path / "download" / "UCMerced_LandUse" / "Images"
    train, val = [], []
    for c in CLASSES:
        files = sorted((UCM / "images" / c).glob("*.jpg"))[:per_class]
        for i, f in enumerate(files):
            out = raw / c / f"{f.stem}.tif"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.open(f).save(out)
            (val if i == 0 else train).append(f"./{c}/{f.stem}.tif")
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "train.txt").write_text("\n".join(train) + "\n")
    (splits / "val.txt").write_text("\n".join(val) + "\n")
    return tmp_path / "download", splits


def test_prepare_ucmerced_tif_layout(tmp_path):
    src, splits = fake_ucmerced_raw(tmp_path)
    assert find_class_root(src, set(CLASSES)).name == "Images"  # found below an extra top folder
    rep = prepare_scene("uc_merced", src, tmp_path / "data", splits=splits)
    assert rep["ok"] and rep["missing"] == {"train": 0, "val": 0}
    assert rep["linked"] + rep["copied"] == 9
    ds = open_scene_dataset("uc_merced", data_root=tmp_path / "data")
    assert ds.classes == CLASSES and len(ds.samples("train")) == 6 and len(ds.samples("val")) == 3
    report = ds.check()  # a 3-class subset is not UC Merced: recorded as a subset (never compared with the paper)
    assert "3 of 21 classes" in report["subset"] and ds.is_subset and ds.describe()["is_subset"] is True
    assert (tmp_path / "data" / "uc_merced" / "train.txt").read_text() == (splits / "train.txt").read_text()


def test_prepare_reports_missing_entries_against_official_split(tmp_path, capsys):
    src = tmp_path / "download" / "UCMerced_LandUse" / "Images"
    classes = sorted(p.name for p in (UCM / "images").iterdir())
    for c in classes:  # one real image per class, under its official .tif name
        (src / c).mkdir(parents=True)
        Image.open(UCM / "images" / "agricultural" / "agricultural08.jpg").save(src / c / f"{c}00.tif")
    src = tmp_path / "download"
    code = main(["data", "prepare", "uc_merced", "--src", str(src), "--out", str(tmp_path / "data")])
    out, err = capsys.readouterr()
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "split entries have no file" in lines[0]
    assert "2079 split entries" in lines[0]  # 2100 official entries, 21 present


def test_prepare_any_extension_accepts_jpeg_reencodings(tmp_path):
    src = tmp_path / "raw" / "Images"
    for c in CLASSES:
        (src / c).mkdir(parents=True)
        for f in sorted((UCM / "images" / c).glob("*.jpg"))[:2]:
            (src / c / f.name).write_bytes(f.read_bytes())
    splits = tmp_path / "splits"
    splits.mkdir()
    names = [f"./{c}/{f.stem}.tif" for c in CLASSES for f in sorted((UCM / "images" / c).glob("*.jpg"))[:2]]
    (splits / "train.txt").write_text("\n".join(names[::2]) + "\n")
    (splits / "val.txt").write_text("\n".join(names[1::2]) + "\n")
    with pytest.raises(DataError, match="no file|expected"):
        rep = prepare_scene("uc_merced", tmp_path / "raw", tmp_path / "strict", splits=splits)
        assert not rep["ok"]
        raise DataError("no file")
    rep = prepare_scene("uc_merced", tmp_path / "raw", tmp_path / "data", splits=splits, any_extension=True)
    assert rep["ok"] and rep["renamed_extension"] == 6
    assert (tmp_path / "data" / "uc_merced" / "val.txt").read_text().splitlines()[0].endswith(".jpg")


def test_prepare_unknown_layout_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty" / "x").mkdir(parents=True)
    code = main(["data", "prepare", "eurosat", "--src", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "expected class folders" in err
    code = main(["data", "prepare", "eurosatt", "--src", str(tmp_path), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "did you mean: eurosat" in err


def test_data_check_ok_and_decode(capsys):
    code = main(["data", "check", "ucm-mini", "--decode", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "decoded: 420" in out and out.strip().endswith("ok")
