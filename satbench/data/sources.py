"""Where each benchmark dataset comes from: pinned URLs, checksums, licences, and what to do by hand.

This module is data only (one table, :data:`SOURCES`); :mod:`satbench.download` fetches and verifies the files,
:mod:`satbench.archives` unpacks them safely and :mod:`satbench.data.install` runs ``data prepare`` and the check.

Checksums were taken from the code of the libraries that publish these mirrors and checked against a second
source where one exists; ``checksum_source`` says where each came from. Where no published checksum is known
the field is ``None``: satbench then computes md5 and sha256 on the first download and records them in
``$SATBENCH_HOME/downloads/checksums.json`` (trust on first use), and says so; it never invents one.
Sizes are informational (progress bar, disk-space hint), never a check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..errors import UnknownNameError, close_matches


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: where it lives and how to recognise it.

    ``url`` is a plain HTTPS URL or a Hugging Face ``resolve`` URL pinned to a commit
    (``https://hf.co/datasets/<repo>/resolve/<commit>/<file>``), which is fetched through ``huggingface_hub``.
    ``url`` is None for files that must be obtained by hand.
    """

    filename: str
    url: Optional[str] = None
    md5: Optional[str] = None
    sha256: Optional[str] = None
    size: Optional[int] = None
    checksum_source: str = ""


@dataclass(frozen=True)
class DatasetSource:
    """How to obtain one dataset.

    ``kind`` is ``scene`` (archives unpacked, then ``data prepare`` links the images) or ``segmentation``
    (mmseg's converter reads the zip files itself; satbench only inspects them for unsafe members).
    ``files`` with ``url`` None mean a manual download: ``manual`` says where to get them.
    ``alternatives`` are other pinned sources of the same data (``data download NAME --source KEY``).
    """

    name: str
    title: str
    kind: str
    files: tuple[RemoteFile, ...]
    licence: str
    public_domain: bool
    citation: str
    homepage: str
    manual: str = ""
    alternatives: dict[str, tuple[RemoteFile, ...]] = field(default_factory=dict)
    folder: str = ""  # the prepared dataset's folder under the data root, when it differs from ``name``

    @property
    def target(self) -> str:
        """Folder name of the prepared dataset under the data root (segmentation: mmseg's folder name)."""
        return self.folder or self.name

    @property
    def downloadable(self) -> bool:
        """True when every file has a URL satbench can fetch."""
        return bool(self.files) and all(f.url for f in self.files)

    def files_for(self, source: Optional[str] = None) -> tuple[RemoteFile, ...]:
        """The files of the primary source, or of alternative ``source``."""
        if source in (None, "", "default"):
            return self.files
        if source not in self.alternatives:
            known = ", ".join(["default", *self.alternatives]) or "default"
            raise UnknownNameError(f"dataset {self.name} has no source {source!r}; known: {known}")
        return self.alternatives[source]


_TG = "checksum as published in the torchgeo dataset code for this exact URL"

SOURCES: dict[str, DatasetSource] = {s.name: s for s in [
    DatasetSource(
        name="uc_merced", title="UC Merced Land Use", kind="scene",
        files=(RemoteFile(
            "UCMerced_LandUse.zip",
            "https://hf.co/datasets/torchgeo/ucmerced/resolve/7c5ef3454d9b1cccfa7ccde0c01fc8f00a45909a/UCMerced_LandUse.zip",
            md5="5b7ec56793786b6dc8a908e8854ac0e4",
            checksum_source=_TG + " (torchgeo UCMerced; the same md5 is published for the original "
                                  "weegee.vision.ucmerced.edu zip)"),),
        licence="public domain imagery (USGS National Map Urban Area Imagery)", public_domain=True,
        citation="Yi Yang and Shawn Newsam, Bag-Of-Visual-Words and Spatial Extensions for Land-Use "
                 "Classification, ACM SIGSPATIAL GIS 2010",
        homepage="http://weegee.vision.ucmerced.edu/datasets/landuse.html",
    ),
    DatasetSource(
        name="eurosat", title="EuroSAT (RGB JPEGs)", kind="scene",
        files=(RemoteFile(
            "EuroSAT.zip",
            "https://huggingface.co/datasets/torchgeo/eurosat/resolve/c877bcd43f099cd0196738f714544e355477f3fd/EuroSAT.zip",
            md5="c8fa014336c82ac7804f0398fcb19387",
            checksum_source="checksum as published in torchvision.datasets.EuroSAT for this exact URL (the RGB "
                            "2750/<Class>/*.jpg archive)"),),
        alternatives={"zenodo": (RemoteFile(
            "EuroSAT_RGB.zip", "https://zenodo.org/records/7711810/files/EuroSAT_RGB.zip?download=1",
            md5="f46e308c4d50d4bf32fedad2d3d62f3b", size=94658721,
            checksum_source="md5 Zenodo publishes for record 7711810 (quoted identically by several public "
                            "projects)"),)},
        licence="MIT (github.com/phelber/EuroSAT); contains modified Copernicus Sentinel-2 data",
        public_domain=False,
        citation="Patrick Helber et al., EuroSAT: A Novel Dataset and Deep Learning Benchmark for Land Use and "
                 "Land Cover Classification, IEEE JSTARS 2019",
        homepage="https://github.com/phelber/EuroSAT",
    ),
    DatasetSource(
        name="resisc45", title="NWPU-RESISC45", kind="scene",
        files=(RemoteFile(
            "NWPU-RESISC45.zip",
            "https://hf.co/datasets/isaaccorley/resisc45/resolve/883edc0eee77b2c84225472f10f126e3ed83fa6e/NWPU-RESISC45.zip",
            sha256="beeecd0b63656290ae6d65cf7763185b0c1c4c54a753ef8088d6fba3faaf1f53",
            checksum_source="sha256 published for this exact URL by two independent public projects (a torchgeo "
                            "port and a pinned downloader). The md5 75206b2e16446591afa88e2628744886 belongs to "
                            "the torchgeo/resisc45 copy (source 'torchgeo'), not verified for this one"),),
        alternatives={"torchgeo": (RemoteFile(
            "NWPU-RESISC45.zip",
            "https://hf.co/datasets/torchgeo/resisc45/resolve/a826b44d938a883185f11ebe3d512d38b464312f/NWPU-RESISC45.zip",
            md5="75206b2e16446591afa88e2628744886", checksum_source=_TG + " (torchgeo RESISC45)"),)},
        licence="no licence stated by the authors (distributed for research use)", public_domain=False,
        citation="Gong Cheng, Junwei Han and Xiaoqiang Lu, Remote Sensing Image Scene Classification: Benchmark "
                 "and State of the Art, Proceedings of the IEEE 2017",
        homepage="https://gcheng-nwpu.github.io/",
    ),
    DatasetSource(
        name="loveda", title="LoveDA", kind="segmentation",
        files=tuple(RemoteFile(f"{split}.zip", f"https://zenodo.org/records/5706578/files/{split}.zip?download=1",
                               md5=md5, size=size,
                               checksum_source=_TG + " (torchgeo LoveDA; Zenodo record 5706578)")
                    for split, md5, size in (("Train", "de2b196043ed9b4af1690b3f9a7d558f", 4021669263),
                                             ("Val", "84cae2577468ff0b5386758bb386d31d", 2425958254),
                                             ("Test", "a489be0090465e01fb067795d24e6b47", 3126023212))),
        licence="CC BY-NC-SA 4.0 (non-commercial, share-alike; github.com/Junjue-Wang/LoveDA)", public_domain=False,
        citation="Junjue Wang et al., LoveDA: A Remote Sensing Land-Cover Dataset for Domain Adaptive Semantic "
                 "Segmentation, NeurIPS Datasets and Benchmarks 2021 (doi:10.5281/zenodo.5706578)",
        homepage="https://github.com/Junjue-Wang/LoveDA",
    ),
    DatasetSource(
        name="whu-rs19", title="WHU-RS19", kind="scene",
        files=(RemoteFile("WHU-RS19.zip"),),
        licence="no licence stated by the authors (distributed for research use)", public_domain=False,
        citation="Gui-Song Xia et al., Structural High-resolution Satellite Image Indexing, ISPRS TC VII "
                 "Symposium 2010",
        homepage="https://captain-whu.github.io/BED4RS/",
        manual="WHU-RS19 (1,005 images, 19 classes) is distributed by Wuhan University's CAPTAIN group from "
               "https://captain-whu.github.io/BED4RS/ (formerly http://captain.whu.edu.cn/datasets/WHU-RS19.zip); "
               "no pinned copy with a published checksum is known to satbench",
    ),
    DatasetSource(
        name="rs_c11", title="RS_C11", kind="scene",
        files=(RemoteFile("RS_C11_Database.zip"),),
        licence="no licence stated by the authors", public_domain=False,
        citation="Lijun Zhao, Ping Tang and Lianzhi Huo, Feature significance-based multibag-of-visual-words "
                 "model for remote sensing image scene classification, J. Applied Remote Sensing 2016",
        homepage="https://www.researchgate.net/publication/271647282_RS_C11_Database",
        manual="RS_C11 (1,232 images, 11 classes, RS_C11_Database/<class>/*) is shared by its authors "
               "(see the ResearchGate entry 'RS_C11_Database'); no public pinned copy with a checksum is known "
               "to satbench (save the archive you get as RS_C11_Database.zip)",
    ),
    DatasetSource(
        name="siri-whu", title="SIRI-WHU (Google)", kind="scene",
        files=(RemoteFile("SIRI-WHU.zip"),),
        licence="no licence stated by the authors (offered for research purposes)", public_domain=False,
        citation="Bei Zhao, Yanfei Zhong, Gui-Song Xia and Liangpei Zhang, Dirichlet-derived multiple topic "
                 "scene classification model for high spatial resolution remote sensing imagery, IEEE TGRS 2016",
        homepage="http://www.lmars.whu.edu.cn/prof_web/zhongyanfei/e-code.html",
        manual="SIRI-WHU (2,400 images, 12 classes; the 'Google dataset of SIRI-WHU_earth_im_tiff/12class_tif' "
               "folder) is offered by Yanfei Zhong's RSIDEA group at "
               "http://www.lmars.whu.edu.cn/prof_web/zhongyanfei/e-code.html; no pinned copy with a published "
               "checksum is known to satbench (save the archive you get as SIRI-WHU.zip)",
    ),
    DatasetSource(
        name="potsdam", title="ISPRS Potsdam", kind="segmentation",
        files=(RemoteFile("2_Ortho_RGB.zip"), RemoteFile("5_Labels_all_noBoundary.zip")),
        licence="ISPRS benchmark terms: request the data from ISPRS; use for research, cite the benchmark, "
                "do not redistribute", public_domain=False,
        citation="Franz Rottensteiner et al., The ISPRS benchmark on urban object classification and 3D building "
                 "reconstruction, ISPRS Annals I-3, 2012",
        homepage="https://www.isprs.org/education/benchmarks/UrbanSemLab/2d-sem-label-potsdam.aspx",
        manual="ISPRS Potsdam must be requested from ISPRS through the data request form linked from "
               "https://www.isprs.org/education/benchmarks/UrbanSemLab/2d-sem-label-potsdam.aspx; mmseg's converter "
               "needs 2_Ortho_RGB.zip and 5_Labels_all_noBoundary.zip. satbench knows no published checksum for "
               "either file (torchgeo's Potsdam checksums are for 4_Ortho_RGBIR.zip and 5_Labels_all.zip, which "
               "mmseg does not use); they are computed and recorded on first use",
    ),
    DatasetSource(
        name="vaihingen", title="ISPRS Vaihingen", kind="segmentation",
        files=(RemoteFile("ISPRS_semantic_labeling_Vaihingen.zip", md5="462b8dca7b6fa9eaf729840f0cdfc7f3",
                          checksum_source="md5 as published in torchgeo's Vaihingen2D for this file name"),
               RemoteFile("ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip")),
        licence="ISPRS benchmark terms: request the data from ISPRS; use for research, cite the benchmark, "
                "do not redistribute", public_domain=False,
        citation="Franz Rottensteiner et al., The ISPRS benchmark on urban object classification and 3D building "
                 "reconstruction, ISPRS Annals I-3, 2012",
        homepage="https://www.isprs.org/education/benchmarks/UrbanSemLab/2d-sem-label-vaihingen.aspx",
        manual="ISPRS Vaihingen must be requested from ISPRS through the data request form linked from "
               "https://www.isprs.org/education/benchmarks/UrbanSemLab/2d-sem-label-vaihingen.aspx; mmseg's "
               "converter needs ISPRS_semantic_labeling_Vaihingen.zip (md5 462b8dca7b6fa9eaf729840f0cdfc7f3, as "
               "torchgeo publishes it) and ISPRS_semantic_labeling_Vaihingen_ground_truth_eroded_COMPLETE.zip "
               "(no published checksum known: computed and recorded on first use; torchgeo's 4802dd63... is for "
               "the non-eroded ground truth)",
    ),
]}

#: Accepted spellings for ``data download`` (besides the scene-dataset aliases of :mod:`satbench.data.scene`).
ALIASES = {"ucmerced": "uc_merced", "uc-merced": "uc_merced", "ucm": "uc_merced", "nwpu-resisc45": "resisc45",
           "whu_rs19": "whu-rs19", "rs-c11": "rs_c11", "siri_whu": "siri-whu", "siriwhu": "siri-whu"}


def get_source(name: str) -> DatasetSource:
    """The source entry of dataset ``name`` (aliases accepted); unknown names list close matches."""
    key = ALIASES.get(name.lower(), name.lower())
    if key not in SOURCES:
        raise UnknownNameError(f"no download source for dataset {name!r}{close_matches(name, sorted(SOURCES))}; "
                               f"known: {', '.join(sorted(SOURCES))}")
    return SOURCES[key]


def public_names() -> list[str]:
    """Datasets satbench can download by itself (every file has a pinned URL)."""
    return sorted(n for n, s in SOURCES.items() if s.downloadable)
