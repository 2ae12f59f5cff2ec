"""fMoW CSV writer and datasets (spec 2.4, 4.3) on a small fMoW-baseline-shaped tree of real images."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from satbench.data.fmow import (CSV_COLUMNS, FMOW_CATEGORIES, FMoWDataset, FMoWTemporalDataset, struct_to_rows,
                                write_fmow_csv)
from satbench.errors import DataError


def test_63_class_order():
    assert len(FMOW_CATEGORIES) == 63 and len(set(FMOW_CATEGORIES)) == 63
    assert FMOW_CATEGORIES[0] == "false_detection" and FMOW_CATEGORIES[1] == "airport"
    assert FMOW_CATEGORIES[43] == "impoverished_settlement" and FMOW_CATEGORIES[44] == "road_bridge"
    assert FMOW_CATEGORIES[62] == "zoo" and FMOW_CATEGORIES[35] == "parking_lot_or_garage"


def _make_tree(root: Path, ucm_mini) -> Path:
    """input/train_data/<split>/<cat>/<cat>_<seq>/<cat>_<bbox>/<cat>_<seq>_<n>_rgb.{jpg,_features.json}."""
    src = [s.path for s in ucm_mini.samples("train")[:4]]
    entries = []
    spec = [("train", "airport", 0, 11, 0, src[0], 0.5), ("train", "airport", 0, 11, 1, src[1], 0.6),
            ("train", "zoo", 3, 12, 0, src[2], 1.2), ("val", "impoverished_settlement", 1, 13, 0, src[3], 0.9)]
    for split, cat, seq, bbox, n, img, gsd in spec:
        d = root / "input" / "train_data" / split / cat / f"{cat}_{seq}" / f"{cat}_{bbox}"
        d.mkdir(parents=True, exist_ok=True)
        base = f"{cat}_{seq}_{n}_rgb"
        shutil.copy(img, d / f"{base}.jpg")
        feats = [0.0] * 45
        feats[0], feats[4], feats[5], feats[7] = gsd, 2015.0, 7 / 12, 13.75
        (d / f"{base}_features.json").write_text(json.dumps(feats))
        entries.append({"features_path": str(d / f"{base}_features.json"), "img_path": str(d / f"{base}.jpg"),
                        "category": FMOW_CATEGORIES.index(cat)})
    struct = root / "training_struct.json"
    struct.write_text(json.dumps(entries))
    return struct


def test_struct_to_csv_columns_and_values(tmp_path, ucm_mini):
    struct = _make_tree(tmp_path / "fmow", ucm_mini)
    out = tmp_path / "train.csv"
    assert write_fmow_csv(struct, "train", out) == 3
    rows = list(csv.DictReader(open(out)))
    assert tuple(rows[0]) == CSV_COLUMNS
    r = rows[0]
    assert r["id"] == "airport/airport_0" and r["split"] == "train" and r["category_name"] == "airport"
    assert r["image_path"] == "input/train_data/train/airport/airport_0/airport_11/airport_0_0_rgb.jpg"
    assert r["feature_path"].endswith("airport_0_0_rgb_features.json") and len(r["feature_path"].split("/")) == 7
    assert (r["category_idx"], float(r["gsd"]), r["hour"], r["month"], r["year"]) == ("1", 0.5, "13", "7", "2015")
    assert rows[2]["category_idx"] == "62"
    val = struct_to_rows(struct, "val")
    assert len(val) == 1 and val[0]["category_idx"] == 43


def test_datasets_basic_and_temporal(tmp_path, ucm_mini):
    struct = _make_tree(tmp_path / "fmow", ucm_mini)
    out = tmp_path / "train.csv"
    write_fmow_csv(struct, "train", out)
    root = tmp_path / "fmow"
    ds = FMoWDataset(out, root)
    img, label = ds[2]
    assert img.mode == "RGB" and label == 62 and len(ds) == 3
    t = FMoWTemporalDataset(out, root, temporal=False)
    images, label, meta = t[0]
    assert images[0] is images[1] is images[2] and meta["gsd"] == [0.5] * 3 and meta["month"] == [7.0] * 3
    tt = FMoWTemporalDataset(out, root, temporal=True)
    images, label, meta = tt[0]
    assert meta["gsd"][2] == 0.5 and meta["gsd"][0] == meta["gsd"][1] == 0.6  # the other acquisition of airport/airport_0
    images, label, meta = tt[2]  # zoo has one acquisition: itself
    assert meta["gsd"] == [1.2] * 3


def test_bad_rows_name_the_csv_line(tmp_path, ucm_mini):
    struct = _make_tree(tmp_path / "fmow", ucm_mini)
    out = tmp_path / "train.csv"
    write_fmow_csv(struct, "train", out)
    lines = out.read_text().splitlines()
    bad = lines[:2] + [lines[2].replace("airport_0_1_rgb.jpg", "missing.jpg")] + lines[3:]
    (tmp_path / "bad.csv").write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError, match=r"bad.csv:3: image .*missing.jpg does not exist"):
        FMoWDataset(tmp_path / "bad.csv", tmp_path / "fmow")
    bad = lines[:3] + [lines[3].replace(",62,", ",63,")]
    (tmp_path / "bad2.csv").write_text("\n".join(bad) + "\n")
    with pytest.raises(DataError, match=r"bad2.csv:4: unknown category_idx 63"):
        FMoWDataset(tmp_path / "bad2.csv", tmp_path / "fmow")
    entries = json.loads(struct.read_text())
    entries[0]["img_path"] = entries[0]["img_path"].replace("/airport/", "/not_a_class/")
    (tmp_path / "s2.json").write_text(json.dumps(entries))
    with pytest.raises(DataError, match="entry 0: unknown fMoW category 'not_a_class'"):
        struct_to_rows(tmp_path / "s2.json", "train")


def test_cli_fmow_csv(tmp_path, ucm_mini):
    struct = _make_tree(tmp_path / "fmow", ucm_mini)
    r = subprocess.run([sys.executable, "-m", "satbench.cli", "data", "fmow-csv", "--struct", str(struct), "--split", "val",
                        "--out", str(tmp_path / "val.csv")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "wrote 1 val rows" in r.stdout
    r = subprocess.run([sys.executable, "-m", "satbench.cli", "data", "fmow-csv", "--struct", str(tmp_path / "no.json"),
                        "--split", "val", "--out", str(tmp_path / "v.csv")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "does not exist" in r.stderr
