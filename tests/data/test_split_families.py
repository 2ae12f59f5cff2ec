"""TorchGeo's split files (`--split torchgeo`): the catalog pins them as torchgeo's dataset classes do; their lines map
to the folders' `./<class>/<file>` (EuroSAT's 13-band `.tif` names to the RGB `.jpg`); they are downloaded through the
hub transport from a loopback server and refused when the md5 does not match."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

from satbench.data.catalog import SPLITS_DIR, get_dataset_spec, list_datasets
from satbench.data.scene import open_scene_dataset
from satbench.data.split_families import folder_extension, map_entry
from satbench.errors import CatalogError, DataError
from satbench.io.download import DownloadError
from support.loopback_http import LoopbackServer
from support.paths import UCM_MINI
from support.torchgeo_splits import serve, torchgeo_lines

#: torchgeo/datasets/{eurosat,ucmerced,resisc45}.py (microsoft/torchgeo at 7ea0616ded0c): url and split_md5s
TORCHGEO = {
    "eurosat": ("https://hf.co/datasets/torchgeo/eurosat/resolve/1ce6f1bfb56db63fd91b6ecc466ea67f2509774c/",
                "eurosat-{}.txt", ("908f142e73d6acdf3f482c5e80d851b1", "95de90f2aa998f70a3b2416bfe0687b4",
                                   "7ae5ab94471417b6e315763121e67c5f")),
    "uc_merced": ("https://hf.co/datasets/torchgeo/ucmerced/resolve/7c5ef3454d9b1cccfa7ccde0c01fc8f00a45909a/",
                  "uc_merced-{}.txt", ("f2fb12eb2210cfb53f93f063a35ff374", "11ecabfc52782e5ea6a9c7c0d263aca0",
                                       "046aff88472d8fc07c4678d03749e28d")),
    "resisc45": ("https://hf.co/datasets/isaaccorley/resisc45/resolve/883edc0eee77b2c84225472f10f126e3ed83fa6e/",
                 "resisc45-{}.txt", ("b5a4c05a37de15e4ca886696a85c403e", "a0770cee4c5ca20b8c32bbd61e114805",
                                     "3dda9e4988b47eb1de9f07993653eb08")),
}
UCM_COMMIT = "7c5ef3454d9b1cccfa7ccde0c01fc8f00a45909a"


def test_the_catalog_pins_torchgeos_urls_and_md5s():
    assert sorted(s.name for s in list_datasets("scene") if "torchgeo" in s.split_families) == sorted(TORCHGEO)
    for name, (base, pattern, md5s) in TORCHGEO.items():
        fam = get_dataset_spec(name).split_family("torchgeo")
        assert fam.report == "test" and list(fam.files) == ["train", "val", "test"]
        for split, md5 in zip(("train", "val", "test"), md5s):
            rf = fam.files[split]
            assert (rf.filename, rf.url, rf.md5) == (pattern.format(split), base + pattern.format(split), md5)
    assert get_dataset_spec("uc_merced").split_family("satdino") is None  # the default family needs no declaration
    with pytest.raises(CatalogError, match="dataset uc_merced has no split family 'tg'; it has: satdino, torchgeo"):
        get_dataset_spec("uc_merced").split_family("tg")


def _official_names(dataset: str) -> list[str]:
    """Every entry of SatDINO's official train + val split of ``dataset`` (shipped with satbench)."""
    return [ln.strip() for split in ("train", "val") for ln in (SPLITS_DIR / dataset / f"{split}.txt").read_text().splitlines()
            if ln.strip()]


@pytest.mark.parametrize("dataset, published, extension", [
    ("eurosat", ".tif", ".jpg"),        # torchgeo's EuroSAT names the 13-band GeoTIFFs; EuroSAT-RGB holds JPEGs
    ("eurosat", ".jpg", ".jpg"),        # the lines torchgeo rewrites from .jpg to .tif
    ("uc_merced", ".tif", ".tif"),      # the original TIFFs
    ("resisc45", ".jpg", ".jpg"),
])
def test_every_real_image_name_maps_back_to_its_satbench_entry(dataset, published, extension):
    """All 27,000 EuroSAT, 2,100 UC Merced and 31,500 RESISC45 names of SatDINO's official splits, written as torchgeo
    writes them (one bare file name per line), map to the entry the official split names."""
    fam = get_dataset_spec(dataset).split_family("torchgeo")
    entries = _official_names(dataset)
    assert len(entries) == {"eurosat": 27000, "uc_merced": 2100, "resisc45": 31500}[dataset]
    for i, entry in enumerate(entries):
        line = Path(entry).stem + published
        assert map_entry(fam, line, extension, f"f:{i}") == entry


def test_eurosat_tif_names_map_to_the_rgb_jpgs():
    fam = get_dataset_spec("eurosat").split_family("torchgeo")
    assert map_entry(fam, "AnnualCrop_1.tif", ".jpg", "f:1") == "./AnnualCrop/AnnualCrop_1.jpg"
    assert map_entry(fam, "HerbaceousVegetation_2999.tif\r", ".jpg", "f:2") == \
        "./HerbaceousVegetation/HerbaceousVegetation_2999.jpg"
    assert map_entry(get_dataset_spec("resisc45").split_family("torchgeo"), "storage_tank_525.jpg", ".jpg", "f:3") == \
        "./storage_tank/storage_tank_525.jpg"
    assert map_entry(get_dataset_spec("uc_merced").split_family("torchgeo"), "agricultural00.tif", ".jpg", "f:4") == \
        "./agricultural/agricultural00.jpg"
    for bad in ("AnnualCrop/AnnualCrop_1.tif", "AnnualCrop_1.png", "../AnnualCrop_1.tif", "AnnualCrop.tif", ""):
        with pytest.raises(DataError, match=r"^eurosat-train\.txt:7: entry .* is not a file name of the form "):
            map_entry(fam, bad, ".jpg", "eurosat-train.txt:7")


def test_folder_extension_is_the_one_extension_of_its_images(tmp_path):
    assert folder_extension(UCM_MINI / "images") == ".jpg"
    mixed = tmp_path / "images"
    shutil.copytree(UCM_MINI / "images" / "agricultural", mixed / "agricultural")
    shutil.copy(next((UCM_MINI / "images" / "beach").iterdir()), mixed / "agricultural" / "beach00.tif")
    with pytest.raises(DataError, match=r"mixes image extensions \(agricultural/\S+ is \.jpg, agricultural/beach00.tif "
                                        r"is \.tif\)"):
        folder_extension(mixed)


@pytest.fixture
def ucm_folder(tmp_path) -> Path:
    """Three classes of the bundled ucm-mini (20 real images each) as a `uc_merced` folder."""
    root = tmp_path / "data" / "uc_merced"
    for cls in ("agricultural", "airplane", "beach"):
        shutil.copytree(UCM_MINI / "images" / cls, root / "images" / cls)
    return root


def test_download_through_the_hub_transport_then_offline_from_its_cache(tmp_path, ucm_folder, monkeypatch):
    lines = torchgeo_lines(ucm_folder / "images")
    with LoopbackServer(commit=UCM_COMMIT) as srv:
        served = serve(monkeypatch, srv, "uc_merced", lines, hf_cache=tmp_path / "hf")
        ds = open_scene_dataset(str(ucm_folder), split_family="torchgeo")
        gets = srv.gets()
    assert {g["path"].rsplit("/", 1)[1] for g in gets} == {f"uc_merced-{s}.txt" for s in ("train", "val", "test")}
    assert ds.split_family == "torchgeo" and ds.eval_split == "test" and list(ds.splits) == ["train", "val", "test"]
    assert [len(ds.samples(s)) for s in ("train", "val", "test")] == [36, 12, 12]
    assert ds.samples("test")[0].path == ucm_folder / "images" / "agricultural" / Path(lines["test"][0]).with_suffix(".jpg")
    d = ds.describe()
    assert d["split_family"] == "torchgeo" and d["split_source"] == "torchgeo"
    assert d["official_split"] == {"train": "modulo-extension", "val": "modulo-extension", "test": "modulo-extension"}
    f = d["split_family_files"]
    assert f["extension_used"] == ".jpg" and f["report"] == "test"
    for split, data in served.items():
        assert f["files"][split]["md5"] == hashlib.md5(data).hexdigest() and f["files"][split]["how"] == "hub"
        assert d["split_hashes"][split] == hashlib.sha256(data).hexdigest()
    # offline, no server: the verified files come from the hub cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hfc
    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", True)
    again = open_scene_dataset(str(ucm_folder), split_family="torchgeo")
    assert {s: sf.sha256 for s, sf in again.splits.items()} == d["split_hashes"]


def test_a_wrong_md5_is_refused_before_a_line_is_read(tmp_path, ucm_folder, monkeypatch):
    lines = torchgeo_lines(ucm_folder / "images")
    with LoopbackServer(commit=UCM_COMMIT) as srv:
        serve(monkeypatch, srv, "uc_merced", lines, hf_cache=tmp_path / "hf", md5={"val": "0" * 32})
        with pytest.raises(DownloadError, match=r"uc_merced-val\.txt: checksum mismatch \(md5 [0-9a-f]{32}, expected "
                                                r"0{32}; the published checksum\); the file is not used$"):
            open_scene_dataset(str(ucm_folder), split_family="torchgeo")


def test_offline_without_the_files_names_the_url_and_where_to_put_them(ucm_folder):
    with pytest.raises(DownloadError, match=r"uc_merced-train\.txt\S* is not in the Hugging Face cache .* downloads are "
                                            r"off; download https://hf\.co/datasets/torchgeo/ucmerced/resolve/"
                                            r".*/uc_merced-train\.txt by hand and place it at .*splits/torchgeo/"
                                            r"uc_merced/uc_merced-train\.txt"):
        open_scene_dataset(str(ucm_folder), split_family="torchgeo")


def test_datasets_without_torchgeo_splits_are_refused_in_one_line(tmp_path):
    with pytest.raises(DataError, match=r"^--split torchgeo: ucm-mini is a subset of uc_merced, and the torchgeo split "
                                        r"files name every image of uc_merced; pass the full uc_merced folder"):
        open_scene_dataset("ucm-mini", split_family="torchgeo")
    mine = tmp_path / "mydata"
    shutil.copytree(UCM_MINI, mine)
    with pytest.raises(DataError, match=r"a folder that is not a catalog dataset\) has no published torchgeo split; "
                                        r"datasets with one: eurosat, resisc45, uc_merced"):
        open_scene_dataset(str(mine), split_family="torchgeo")
    with pytest.raises(DataError, match="split_source 'official' chooses among SatDINO's split files"):
        open_scene_dataset(str(mine), split_family="torchgeo", split_source="official")


def test_a_family_spec_with_a_bad_entry_expression_is_one_catalog_line(tmp_path, monkeypatch):
    import yaml

    from satbench.data import catalog

    src = yaml.safe_load((catalog.CATALOG_DIR / "uc_merced.yaml").read_text())
    for name, change, pattern in (
            ("ucm_a", {"entry": "[a-z]+[0-9]{2}\\.tif"}, r"entry needs a \(\?P<class>\.\.\.\) group"),
            ("ucm_b", {"entry": "(?P<class>[a-z"}, r"entry is not a regular expression"),
            ("ucm_c", {"report": "val", "files": {"train": src["split_families"]["torchgeo"]["files"]["train"]}},
             r"files needs a val file")):
        spec = {**src, "name": name, "aliases": [], "download": None,
                "split_families": {"torchgeo": {**src["split_families"]["torchgeo"], **change}}}
        folder = tmp_path / name
        folder.mkdir()
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(spec))
        monkeypatch.setenv("SATBENCH_DATASETS", str(folder))
        catalog._specs_in.cache_clear()
        assert re.search(pattern, catalog.catalog_problems()[str(folder / f"{name}.yaml")])

