"""The download sources are read from the catalog specs' ``download:`` sections (one YAML per dataset).

The expectations below are copied from the Python table ``satbench/data/sources.py`` held before the facts moved
into the catalog: every URL, checksum and size must have survived the move unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from satbench.cli.app import main
from satbench.data.catalog import CatalogError, DatasetSpec, list_datasets
from satbench.data.sources import DatasetSource, RemoteFile, get_source, list_sources, public_names, source_of
from satbench.config.settings import load_settings

_TG = "checksum as published in the torchgeo dataset code for this exact URL"

#: (dataset, source) -> the files the old table had, verbatim.
OLD_FILES = {
    ("uc_merced", "default"): (RemoteFile(
        "UCMerced_LandUse.zip",
        "https://hf.co/datasets/torchgeo/ucmerced/resolve/7c5ef3454d9b1cccfa7ccde0c01fc8f00a45909a/UCMerced_LandUse.zip",
        md5="5b7ec56793786b6dc8a908e8854ac0e4",
        checksum_source=_TG + " (torchgeo UCMerced; the same md5 is published for the original "
                              "weegee.vision.ucmerced.edu zip)"),),
    ("eurosat", "zenodo"): (RemoteFile(
        "EuroSAT_RGB.zip", "https://zenodo.org/records/7711810/files/EuroSAT_RGB.zip?download=1",
        md5="f46e308c4d50d4bf32fedad2d3d62f3b", size=94658721,
        checksum_source="md5 Zenodo publishes for record 7711810 (quoted identically by several public projects)"),),
    ("resisc45", "torchgeo"): (RemoteFile(
        "NWPU-RESISC45.zip",
        "https://hf.co/datasets/torchgeo/resisc45/resolve/a826b44d938a883185f11ebe3d512d38b464312f/NWPU-RESISC45.zip",
        md5="75206b2e16446591afa88e2628744886", checksum_source=_TG + " (torchgeo RESISC45)"),),
    ("loveda", "default"): tuple(
        RemoteFile(f"{split}.zip", f"https://zenodo.org/records/5706578/files/{split}.zip?download=1", md5=md5,
                   size=size, checksum_source=_TG + " (torchgeo LoveDA; Zenodo record 5706578)")
        for split, md5, size in (("Train", "de2b196043ed9b4af1690b3f9a7d558f", 4021669263),
                                 ("Val", "84cae2577468ff0b5386758bb386d31d", 2425958254),
                                 ("Test", "a489be0090465e01fb067795d24e6b47", 3126023212))),
    ("potsdam", "default"): (RemoteFile("2_Ortho_RGB.zip"), RemoteFile("5_Labels_all_noBoundary.zip")),
}

#: name -> (title, public_domain, licence prefix, default files' (url, md5, sha256)) of the old table.
OLD_FACTS = {
    "uc_merced": ("UC Merced Land Use", True, "public domain imagery (USGS", None),
    "eurosat": ("EuroSAT (RGB JPEGs)", False, "MIT (github.com/phelber/EuroSAT)", [(
        "https://huggingface.co/datasets/torchgeo/eurosat/resolve/c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",
        "c8fa014336c82ac7804f0398fcb19387", None)]),
    "resisc45": ("NWPU-RESISC45", False, "no licence stated by the authors (distributed for research use)", [(
        "https://hf.co/datasets/isaaccorley/resisc45/resolve/883edc0eee77b2c84225472f10f126e3ed83fa6e/NWPU-RESISC45.zip",
        None, "beeecd0b63656290ae6d65cf7763185b0c1c4c54a753ef8088d6fba3faaf1f53")]),
    "loveda": ("LoveDA", False, "CC BY-NC-SA 4.0", None),
    "whu-rs19": ("WHU-RS19", False, "no licence stated", [(None, None, None)]),
    "rs_c11": ("RS_C11", False, "no licence stated by the authors", [(None, None, None)]),
    "siri-whu": ("SIRI-WHU (Google)", False, "no licence stated", [(None, None, None)]),
    "potsdam": ("ISPRS Potsdam", False, "ISPRS benchmark terms", [(None, None, None), (None, None, None)]),
    "vaihingen": ("ISPRS Vaihingen", False, "ISPRS benchmark terms", [
        (None, "462b8dca7b6fa9eaf729840f0cdfc7f3", None), (None, None, None)]),
}


def test_every_catalog_download_section_round_trips_to_the_old_table():
    sources = list_sources()
    assert set(sources) == set(OLD_FACTS)
    assert public_names() == ["eurosat", "loveda", "resisc45", "uc_merced"]
    for (name, source), files in OLD_FILES.items():
        assert get_source(name).files_for(source) == files, (name, source)
    for name, (title, public_domain, licence, files) in OLD_FACTS.items():
        src = sources[name]
        assert isinstance(src, DatasetSource) and src.name == name and src.target == name
        assert (src.title, src.public_domain) == (title, public_domain)
        assert src.licence.startswith(licence) and src.citation and src.homepage.startswith("http")
        if files is not None:
            assert [(f.url, f.md5, f.sha256) for f in src.files] == files
        assert bool(src.manual) == (not src.downloadable)
    assert set(sources["eurosat"].alternatives) == {"zenodo"} and set(sources["resisc45"].alternatives) == {"torchgeo"}


def test_one_licence_and_citation_per_dataset():
    """The licence shown before a download is the catalog's ``license`` (no second copy to drift apart)."""
    specs = {s.name: s for s in list_datasets()}
    for name, src in list_sources().items():
        assert (src.licence, src.citation, src.homepage) == (specs[name].license, specs[name].citation,
                                                              specs[name].homepage)
    assert specs["ucm-mini"].license == specs["uc_merced"].license  # the bundled subset of the same imagery
    assert source_of(specs["fmow"]) is None and specs["fmow"].download.manual  # how to get it, nothing downloaded


def test_aliases_come_from_the_catalog():
    for alias, name in [("ucm", "uc_merced"), ("UC-Merced", "uc_merced"), ("nwpu-resisc45", "resisc45"),
                        ("whu_rs19", "whu-rs19"), ("rs-c11", "rs_c11"), ("siriwhu", "siri-whu")]:
        assert get_source(alias).name == name


GOOD = {
    "name": "tinydl", "kind": "scene", "label": "TinyDL", "num_classes": 2, "official_splits": True,
    "license": "CC0", "citation": "Someone 2024", "homepage": "https://example.org/tinydl",
    "download": {"title": "Tiny DL", "public_domain": True, "files": [{
        "filename": "tiny.zip", "url": "https://example.org/tiny.zip",
        "sha256": "ab" * 32, "size": 123}]},
}


def _write(folder: Path, data: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / f"{data['name']}.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def _load(path: Path) -> DatasetSpec:
    """The catalog's strict reading of one spec file."""
    where = f"dataset spec {path}"
    return load_settings(DatasetSpec, yaml.safe_load(path.read_text()), where, error=CatalogError)


def test_a_users_spec_with_a_download_section_is_a_download_source(tmp_path, monkeypatch, capsys):
    _write(tmp_path / "specs", GOOD)
    monkeypatch.setenv("SATBENCH_DATASETS", str(tmp_path / "specs"))
    src = get_source("tinydl")
    assert src.files == (RemoteFile("tiny.zip", "https://example.org/tiny.zip", sha256="ab" * 32, size=123),)
    assert src.public_domain and src.licence == "CC0" and "tinydl" in public_names()
    assert main(["data", "download", "--list"]) == 0
    assert "tinydl" in capsys.readouterr().out


def _with(path: str, value) -> dict:
    """GOOD with the value at dotted ``path`` replaced (``None`` removes it); list indices as numbers."""
    import copy

    data = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = data
    for k in parents:
        node = node[int(k)] if k.isdigit() else node[k]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return data


BAD = [
    ("download.files.0.md55", "x", r"unknown key download\.files\[0\]\.md55 \(did you mean: md5"),
    ("download.mirror", "x", r"unknown key download\.mirror"),
    ("download.files.0.size", "big", r"download\.files\[0\]\.size must be an integer"),
    ("download.files.0.size", -1, r"download\.files\[0\]\.size must be >= 0"),
    ("download.public_domain", "yes", r"download\.public_domain must be true or false"),
    ("download.files.0.md5", "XYZ", r"download\.files\[0\]\.md5 must be 32 lower-case hexadecimal digits"),
    ("download.files.0.sha256", "ab" * 31, r"download\.files\[0\]\.sha256 must be 64"),
    ("download.files.0.url", "http://example.org/tiny.zip", r"download\.files\[0\]\.url must be an https:// URL"),
    ("download.files.0.url", "https://hf.co/datasets/a/b/resolve/main/tiny.zip",
     r"download\.files\[0\]\.url must pin a Hugging Face commit"),
    ("download.files.0.sha256", None, r"download\.files\[0\]: a file with a url needs its published md5 or sha256"),
    ("download.files.0.filename", "../tiny.zip", r"download\.files\[0\]\.filename must be a plain file name"),
    ("download.files.0.url", None, r"download\.manual: a file without a url needs a manual paragraph"),
    ("download.files", [], r"download: give files .* or manual"),
    ("download.alternatives", {"mirror": [{"filename": "t.zip"}]}, r"download\.alternatives\.mirror: .* each with a url"),
    ("download.alternatives", {"default": GOOD["download"]["files"]}, r"download\.alternatives: 'default' is not"),
    ("download.folder", "a/b", r"download\.folder must be a plain folder name"),
    ("homepage", None, r"a dataset with download files needs homepage"),
    ("official_splits", None, r"download\.files need a dataset `data prepare` can convert"),
]


@pytest.mark.parametrize("key,value,message", BAD, ids=[f"{k}={v!r}"[:60] for k, v, _ in BAD])
def test_a_bad_download_key_is_one_line_naming_the_file_and_the_key(tmp_path, key, value, message):
    path = _write(tmp_path, _with(key, value))
    with pytest.raises(CatalogError, match=message) as e:
        _load(path)
    text = str(e.value)
    assert "\n" not in text and text.startswith(f"dataset spec {path}: "), text


def test_a_segmentation_download_names_the_files_mmseg_needs(tmp_path):
    data = {"name": "segdl", "kind": "segmentation", "label": "SegDL", "num_classes": 2, "license": "CC0",
            "citation": "c", "homepage": "https://example.org",
            "segmentation": {"mmseg_dataset": "LoveDADataset", "converter": "loveda.py", "required_files": ["a.zip"],
                             "max_label": 2},
            "download": {"manual": "ask", "files": [{"filename": "b.zip"}]}}
    with pytest.raises(CatalogError, match=r"download\.files \(b\.zip\) must be the files segmentation\.required_files"):
        _load(_write(tmp_path, data))


def test_the_extending_guides_download_example_is_uc_merceds_shipped_section():
    """docs/extending.md quotes UC Merced's ``download:`` section; it must stay what the catalog ships."""
    import re

    from satbench.data.catalog import get_dataset_spec
    from satbench.data.download_spec import DownloadSpec

    guide = (Path(__file__).resolve().parents[2] / "docs" / "extending.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", guide, re.S) if b.startswith("download:")]
    assert len(blocks) == 1
    quoted = load_settings(DownloadSpec, yaml.safe_load(blocks[0])["download"], "docs/extending.md", error=CatalogError)
    assert quoted == get_dataset_spec("uc_merced").download


def test_a_dataset_with_only_a_manual_paragraph_says_how_to_get_it():
    from satbench.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match=r"^satbench downloads nothing for dataset fmow: fMoW-RGB is about 200 GB"):
        get_source("fmow")
    with pytest.raises(UnknownNameError, match=r"no download source for dataset 'eurosot' \(did you mean: eurosat"):
        get_source("eurosot")
