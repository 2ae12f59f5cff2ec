"""`satbench data prepare loveda|potsdam|vaihingen`: mmseg's own converter, then satbench's check."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

pytest.importorskip("mmseg")

FIX = Path(__file__).parent / "fixtures" / "seg"


def _loveda_zips(src: Path) -> None:
    """The official LoveDA zip layout (<Split>/<Rural|Urban>/{images_png,masks_png}) from the real tiles."""
    src.mkdir()
    plan = {"Train": "train", "Val": "val", "Test": "val"}
    for split, ours in plan.items():
        with zipfile.ZipFile(src / f"{split}.zip", "w") as zf:
            for i, img in enumerate(sorted((FIX / "loveda" / "img_dir" / ours).glob("*.png"))):
                where = "Rural" if i % 2 == 0 else "Urban"
                zf.write(img, f"{split}/{where}/images_png/{img.name}")
                if split != "Test":
                    zf.write(FIX / "loveda" / "ann_dir" / ours / img.name, f"{split}/{where}/masks_png/{img.name}")
            for where in ("Rural", "Urban"):  # the converter lists both folders
                for kind in ("images_png", "masks_png"):
                    zf.writestr(f"{split}/{where}/{kind}/", "")


def test_loveda_preparer_runs_mmseg_converter_and_checks(tmp_path):
    from satbench.data.prepare import get_preparer

    src = tmp_path / "raw"
    _loveda_zips(src)
    report = get_preparer("loveda")(src, tmp_path / "data", mode="auto")
    root = tmp_path / "data" / "loveda"
    assert report["dst"] == str(root)
    assert report["counts"] == {"train": 3, "val": 1}
    assert report["matches_expected"] is False and report["expected_counts"]["train"] == 2522
    assert set(report["label_values"]) <= set(range(8))
    assert sorted(p.name for p in (root / "img_dir" / "train").glob("*.png")) == \
        sorted(p.name for p in (FIX / "loveda" / "img_dir" / "train").glob("*.png"))


def test_preparers_name_the_missing_download(tmp_path):
    from satbench.data.prepare import get_preparer
    from satbench.errors import DataError

    (tmp_path / "raw").mkdir()
    with pytest.raises(DataError, match="missing 2_Ortho_RGB.zip, 5_Labels_all_noBoundary.zip"):
        get_preparer("potsdam")(tmp_path / "raw", tmp_path / "out")
    with pytest.raises(DataError, match="ISPRS_semantic_labeling_Vaihingen.zip"):
        get_preparer("vaihingen")(tmp_path / "raw", tmp_path / "out")
    with pytest.raises(DataError, match="no such folder"):
        get_preparer("loveda")(tmp_path / "nope", tmp_path / "out")


def test_bad_labels_are_reported(tmp_path):
    import numpy as np
    from PIL import Image

    from satbench.errors import DataError
    from satbench.seg.prepare import check_labels

    for split in ("train", "val"):
        (tmp_path / "ann_dir" / split).mkdir(parents=True)
    Image.fromarray(np.full((8, 8), 9, np.uint8)).save(tmp_path / "ann_dir" / "val" / "x.png")
    with pytest.raises(DataError, match="x.png: label value 9 out of range 0..6"):
        check_labels(tmp_path, "potsdam")
