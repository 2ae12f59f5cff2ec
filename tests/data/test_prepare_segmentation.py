"""`satbench data prepare loveda|potsdam|vaihingen`: mmseg's own converter, then satbench's check."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from support.paths import SEG_FIXTURES
from support.seg import loveda_zips as _loveda_zips

pytest.importorskip("mmseg")

FIX = SEG_FIXTURES


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
    from satbench.data.prepare_segmentation import check_labels

    for split in ("train", "val"):
        (tmp_path / "ann_dir" / split).mkdir(parents=True)
    Image.fromarray(np.full((8, 8), 9, np.uint8)).save(tmp_path / "ann_dir" / "val" / "x.png")
    with pytest.raises(DataError, match="x.png: label value 9 out of range 0..6"):
        check_labels(tmp_path, "potsdam")


# mmseg's ISPRS converters read labels with mmcv.imread (BGR) and map these colours to 0..6.
ISPRS_BGR = np.array([[0, 0, 0], [255, 255, 255], [255, 0, 0], [255, 255, 0], [0, 255, 0], [0, 255, 255],
                      [0, 0, 255]], dtype=np.uint8)


def _mosaic(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """A 256 x 256 'big image' and its raw 0..6 label from the four real 128-px windows of ``kind``
    (window ``*_{r}_{c}_128`` goes to rows r/2, columns c/2)."""
    from PIL import Image

    img = np.zeros((256, 256, 3), np.uint8)
    lab = np.zeros((256, 256), np.uint8)
    for split in ("train", "val"):
        for f in sorted((FIX / kind / "img_dir" / split).glob("*.png")):
            r, c = (int(v) // 2 for v in f.stem.split("_")[-3:-1])
            img[r:r + 128, c:c + 128] = np.asarray(Image.open(f).convert("RGB"))
            lab[r:r + 128, c:c + 128] = np.asarray(Image.open(FIX / kind / "ann_dir" / split / f.name))
    return img, lab


def _tif(arr: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="TIFF")
    return buf.getvalue()


def _colour(lab: np.ndarray) -> np.ndarray:
    """Raw label -> the official RGB colour-coded label image (the converter reads it back as BGR)."""
    return ISPRS_BGR[lab][..., ::-1].copy()


def _check_tiles(root: Path, split: str, prefix: str, img: np.ndarray, lab: np.ndarray) -> None:
    from PIL import Image

    names = sorted(p.name for p in (root / "img_dir" / split).glob(f"{prefix}_*.png"))
    assert names == sorted(f"{prefix}_{x}_{y}_{x + 128}_{y + 128}.png" for x in (0, 128) for y in (0, 128))
    for name in names:
        x, y = (int(v) for v in name[len(prefix) + 1:-4].split("_")[:2])
        got_img = np.asarray(Image.open(root / "img_dir" / split / name).convert("RGB"))
        got_lab = np.asarray(Image.open(root / "ann_dir" / split / name))
        assert np.array_equal(got_img, img[y:y + 128, x:x + 128]), name
        assert np.array_equal(got_lab, lab[y:y + 128, x:x + 128]), name


def test_potsdam_preparer_on_official_zip_layout_from_real_tiles(tmp_path):
    """2_Ortho_RGB.zip / 5_Labels_all_noBoundary.zip with a train area (2_10) and a val area (2_13) built from
    the real Potsdam windows: every tile and every label value comes back exactly, in the official split."""
    from satbench.cli.app import main

    img, lab = _mosaic("potsdam")
    src = tmp_path / "raw"
    src.mkdir()
    with zipfile.ZipFile(src / "2_Ortho_RGB.zip", "w") as zf:
        for area in ("2_10", "2_13"):
            zf.writestr(f"2_Ortho_RGB/top_potsdam_{area}_RGB.tif", _tif(img))
    with zipfile.ZipFile(src / "5_Labels_all_noBoundary.zip", "w") as zf:
        for area in ("2_10", "2_13"):
            zf.writestr(f"top_potsdam_{area}_label_noBoundary.tif", _tif(_colour(lab)))
    rc = main(["data", "prepare", "potsdam", "--src", str(src), "--out", str(tmp_path / "data"),
               "--clip-size", "128", "--stride-size", "64"])
    assert rc == 0
    root = tmp_path / "data" / "potsdam"
    _check_tiles(root, "train", "2_10", img, lab)
    _check_tiles(root, "val", "2_13", img, lab)
    assert not list((root / "img_dir" / "train").glob("2_13_*")) and not list((root / "img_dir" / "val").glob("2_10_*"))


def test_vaihingen_preparer_on_official_zip_layout_from_real_tiles(tmp_path):
    """The two Vaihingen zips (top/ images, eroded noBoundary labels, an area9 label the converter drops):
    area1 -> train, area6 -> val, IRRG pixels and label values unchanged."""
    from satbench.data.prepare import get_preparer

    img, lab = _mosaic("vaihingen")
    src = tmp_path / "raw"
    src.mkdir()
    with zipfile.ZipFile(src / "ISPRS_semantic_labeling_Vaihingen.zip", "w") as zf:
        for area in ("area1", "area6"):
            zf.writestr(f"top/top_mosaic_09cm_{area}.tif", _tif(img))
    with zipfile.ZipFile(src / "ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip", "w") as zf:
        for area in ("area1", "area6", "area9"):
            zf.writestr(f"top_mosaic_09cm_{area}_noBoundary.tif", _tif(_colour(lab)))
    report = get_preparer("vaihingen")(src, tmp_path / "data", clip_size=128, stride_size=64)
    root = tmp_path / "data" / "vaihingen"
    assert report["counts"] == {"train": 4, "val": 4} and report["matches_expected"] is False
    assert set(report["label_values"]) == set(np.unique(lab).tolist())
    _check_tiles(root, "train", "area1", img, lab)
    _check_tiles(root, "val", "area6", img, lab)
    assert not list((root / "ann_dir").rglob("area9_*"))


def test_clip_size_is_refused_for_other_datasets(tmp_path, capsys):
    from satbench.cli.app import main

    assert main(["data", "prepare", "loveda", "--src", str(tmp_path), "--out", str(tmp_path), "--clip-size", "128"]) != 0
    assert "applies to potsdam and vaihingen only" in capsys.readouterr().err
