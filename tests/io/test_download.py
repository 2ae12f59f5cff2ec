"""`data download`: pinned, checksummed, resumable downloads against a loopback server (127.0.0.1 only).

Archives are built from the bundled ucm-mini images. Covered: success through prepare + check (plain HTTPS
transport and the huggingface_hub transport, then offline from the hub cache), checksum mismatch (nothing
unpacked), a connection cut mid-body then resume with Range, 503 then retry, 404 without retries,
path-traversal / link / bomb members refused with nothing written, licences, manual datasets, the CLI.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from satbench.io.archives import extract_archive, inspect_archive
from satbench.data.install import accept_licence, install_dataset
from satbench.data.sources import DatasetSource, RemoteFile, get_source
from satbench.io.download import DownloadError, fetch, parse_hub_url
from satbench.errors import DataError
from satbench.runtime.resources import bundled_data_dir
from support.locks import lock_holder
from support.loopback_http import LoopbackServer

UCM = bundled_data_dir() / "ucm-mini"
COMMIT = "7c5ef3454d9b1cccfa7ccde0c01fc8f00a45909a"


def ucm_zip(classes: int = 21, per_class: int = 20) -> bytes:
    """UCMerced_LandUse.zip's layout (UCMerced_LandUse/Images/<class>/<file>) holding the bundled images."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for d in sorted((UCM / "images").iterdir())[:classes]:
            for f in sorted(d.iterdir())[:per_class]:
                zf.write(f, f"UCMerced_LandUse/Images/{d.name}/{f.name}")
    return buf.getvalue()


@pytest.fixture(scope="module")
def archive() -> bytes:
    return ucm_zip()


@pytest.fixture
def online(monkeypatch):
    """Downloads allowed (the loopback server is the only thing reachable)."""
    monkeypatch.delenv("SATBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def entry(url: str, data: bytes, *, public_domain: bool = True, digest: str | None = None) -> DatasetSource:
    """The uc_merced source table entry, pointed at the loopback server."""
    real = get_source("uc_merced")
    return DatasetSource(name="uc_merced", title=real.title, kind="scene",
                         files=(RemoteFile("UCMerced_LandUse.zip", url, md5=digest or md5(data)),),
                         licence=real.licence if public_domain else "CC BY-NC-SA 4.0 (test)",
                         public_domain=public_domain, citation=real.citation, homepage=real.homepage)


def install(tmp_path, e, **kw):
    kw.setdefault("splits", UCM)  # the bundled subset's own split (the official one names 2,100 .tif files)
    return install_dataset("uc_merced", tmp_path / "data", entry=e, progress=False, backoff=0.01, **kw)


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_plain_download_prepares_checks_and_records(tmp_path, archive, online):
    with LoopbackServer() as srv:
        url = srv.add("/files/UCMerced_LandUse.zip", archive)
        rep = install(tmp_path, entry(url, archive))
        assert len(srv.gets()) == 1
    final = tmp_path / "data" / "uc_merced"
    assert rep["status"] == "installed" and rep["root"] == str(final)
    assert rep["check"]["train"] == 336 and rep["check"]["val"] == 84 and rep["check"]["classes"] == 21
    assert (final / "images" / "airplane").is_dir() and (final / "train.txt").read_text() == (UCM / "train.txt").read_text()
    prov = json.loads((final / ".satbench-source.json").read_text())
    assert prov["files"][0]["md5"] == md5(archive) and prov["files"][0]["how"] == "http"
    assert leftovers(tmp_path / "data") == ["uc_merced"]  # no staging folder left
    # a second run finds the prepared folder, checks it and does nothing else
    assert install(tmp_path, entry(url, archive))["status"] == "present"


def test_checksum_mismatch_unpacks_nothing(tmp_path, archive, online):
    with LoopbackServer() as srv:
        url = srv.add("/UCMerced_LandUse.zip", archive)
        srv.fault("/UCMerced_LandUse.zip", "wrong")  # same length, other bytes
        with pytest.raises(DownloadError, match=r"checksum mismatch \(md5 [0-9a-f]{32}, expected " + md5(archive)):
            install(tmp_path, entry(url, archive))
    assert leftovers(tmp_path / "data") == []  # no dataset, no staging folder
    dl = tmp_path / "satbench_home" / "downloads" / "uc_merced"
    assert leftovers(dl) == []  # the bad .part was removed, nothing renamed to the final name


def test_cut_connection_then_resume_with_range(tmp_path, archive, online):
    with LoopbackServer() as srv:
        url = srv.add("/u.zip", archive)
        rf = RemoteFile("UCMerced_LandUse.zip", url, md5=md5(archive))
        half = len(archive) // 2
        srv.fault("/u.zip", "cut", at=half)
        # an interrupted run (no retries): the partial file stays and the error says it will be resumed
        with pytest.raises(DownloadError, match=r"after 0 retries.*partial download is kept at .*\.part"):
            fetch(rf, tmp_path / "dl", progress=False, retries=0, backoff=0.01)
        assert (tmp_path / "dl" / "UCMerced_LandUse.zip.part").stat().st_size == half
        res = fetch(rf, tmp_path / "dl", progress=False, retries=0)
        gets = srv.gets("/u.zip")
    assert [g["range"] for g in gets] == [None, f"bytes={half}-"] and gets[1]["status"] == 206
    assert sum(g["sent"] for g in gets) < 2 * len(archive)
    assert res.digests.md5 == md5(archive) and (tmp_path / "dl" / "UCMerced_LandUse.zip").read_bytes() == archive
    assert not (tmp_path / "dl" / "UCMerced_LandUse.zip.part").exists()


def test_cut_is_retried_within_one_call(tmp_path, archive, online):
    with LoopbackServer() as srv:
        url = srv.add("/u.zip", archive)
        srv.fault("/u.zip", "cut", at=1000)
        srv.fault("/u.zip", "cut", at=5000)
        res = fetch(RemoteFile("u.zip", url, md5=md5(archive)), tmp_path, progress=False, retries=1, backoff=0.01)
        gets = srv.gets()
    assert [g["range"] for g in gets] == [None, "bytes=1000-", "bytes=6000-"]
    assert res.bytes_transferred == len(archive) and res.how == "http"


def test_server_error_then_retry_and_404_not_retried(tmp_path, archive, online):
    with LoopbackServer() as srv:
        url = srv.add("/u.zip", archive)
        srv.fault("/u.zip", "status", code=503, retry_after=0)
        srv.fault("/u.zip", "status", code=429, retry_after=0)
        res = fetch(RemoteFile("u.zip", url, md5=md5(archive)), tmp_path / "a", progress=False, backoff=0.01)
        assert [g["status"] for g in srv.gets()] == [503, 429, 200] and res.digests.size == len(archive)
        srv.log.clear()
        with pytest.raises(DownloadError, match=r"HTTP 404.*by hand and place it at"):
            fetch(RemoteFile("x.zip", srv.url("/missing.zip"), md5="0" * 32), tmp_path / "b", progress=False)
        assert len(srv.gets()) == 1
        srv.log.clear()
        for _ in range(3):
            srv.fault("/u.zip", "status", code=500)
        with pytest.raises(DownloadError, match=r"after 2 retries \(_Retryable: HTTP 500\)"):
            fetch(RemoteFile("u.zip", url, md5=md5(archive)), tmp_path / "c", progress=False, retries=2, backoff=0.01)
        assert len(srv.gets()) == 3


def _zip_with(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_traversal_member_is_refused_and_nothing_is_written(tmp_path, online):
    bad = _zip_with({"UCMerced_LandUse/Images/a/ok.jpg": b"x", "../x": b"pwned", "z/../../y": b"pwned"})
    with LoopbackServer() as srv:
        url = srv.add("/evil.zip", bad)
        with pytest.raises(DataError, match=r"refused to unpack: member '\.\./x' points outside the archive"):
            install(tmp_path, entry(url, bad))
    assert not (tmp_path / "x").exists() and not (tmp_path / "data" / "x").exists() and not (tmp_path / "y").exists()
    assert leftovers(tmp_path / "data") == []


def _tar_with(tmp_path, add) -> Path:
    path = tmp_path / "t.tar.gz"
    with tarfile.open(path, "w:gz") as tf:
        add(tf)
    return path


def _member(tf, name, data=b"", **kw):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    for k, v in kw.items():
        setattr(ti, k, v)
    tf.addfile(ti, io.BytesIO(data))


@pytest.mark.parametrize("case,match", [
    ("abs", "absolute path"), ("dotdot", r"points outside"), ("symlink_out", "links outside"),
    ("hardlink_out", "links outside"), ("device", "device, FIFO"),
])
def test_unsafe_tar_members_are_refused(tmp_path, case, match):
    def add(tf):
        _member(tf, "data/ok.txt", b"fine")
        if case == "abs":
            _member(tf, "/tmp/satbench-marker", b"x")
        elif case == "dotdot":
            _member(tf, "data/../../marker", b"x")
        elif case == "symlink_out":
            _member(tf, "data/link", type=tarfile.SYMTYPE, linkname="../../etc")
        elif case == "hardlink_out":
            _member(tf, "data/hl", type=tarfile.LNKTYPE, linkname="../outside")
        else:
            _member(tf, "data/dev", type=tarfile.CHRTYPE)
    path = _tar_with(tmp_path, add)
    with pytest.raises(DataError, match=match):
        extract_archive(path, tmp_path / "out")
    assert leftovers(tmp_path) == ["t.tar.gz"]  # nothing unpacked, no temporary folder


def test_tar_link_inside_the_archive_is_fine(tmp_path):
    def add(tf):
        _member(tf, "data/a.txt", b"hello")
        _member(tf, "data/sub/link", type=tarfile.SYMTYPE, linkname="../a.txt")
    info = extract_archive(_tar_with(tmp_path, add), tmp_path / "out")
    assert info.kind == "tar" and (tmp_path / "out" / "data" / "sub" / "link").read_bytes() == b"hello"


def test_zip_symlink_and_size_bounds_are_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zi = zipfile.ZipInfo("link")
        zi.external_attr = (0o120777 << 16)
        zf.writestr(zi, "/etc/passwd")
    (tmp_path / "s.zip").write_bytes(buf.getvalue())
    with pytest.raises(DataError, match="is a symbolic link"):
        inspect_archive(tmp_path / "s.zip")
    big = _zip_with({"a": b"\0" * 4096, "b": b"\0" * 4096})
    (tmp_path / "b.zip").write_bytes(big)
    with pytest.raises(DataError, match="more than 6000 bytes uncompressed"):
        extract_archive(tmp_path / "b.zip", tmp_path / "out", max_total_bytes=6000)
    with pytest.raises(DataError, match="more than 1 members"):
        extract_archive(tmp_path / "b.zip", tmp_path / "out", max_members=1)
    assert not (tmp_path / "out").exists()
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros", b"\0" * (40 << 20))  # 40 MiB of zeros compress ~1000x
    (tmp_path / "bomb.zip").write_bytes(bomb.getvalue())
    with pytest.raises(DataError, match="decompression bomb"):
        inspect_archive(tmp_path / "bomb.zip")


def test_hub_transport_then_offline_from_the_hub_cache(tmp_path, archive, online, monkeypatch):
    import huggingface_hub.constants as hfc

    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", False)  # read once at import
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    hub_url = f"https://hf.co/datasets/torchgeo/ucmerced/resolve/{COMMIT}/UCMerced_LandUse.zip"
    assert parse_hub_url(hub_url).repo_type == "dataset"
    with LoopbackServer(commit=COMMIT) as srv:
        srv.add(f"/datasets/torchgeo/ucmerced/resolve/{COMMIT}/UCMerced_LandUse.zip", archive)
        monkeypatch.setenv("HF_ENDPOINT", srv.endpoint)
        rep = install(tmp_path, entry(hub_url, archive))
        assert any(r["method"] == "GET" for r in srv.log)
    f = rep["files"][0]
    assert rep["status"] == "installed" and f["how"] == "hub" and f["revision"] == COMMIT and f["md5"] == md5(archive)
    blob = next((tmp_path / "hf").glob("datasets--torchgeo--ucmerced/snapshots/*/UCMerced_LandUse.zip"))
    assert blob.read_bytes() == archive
    # offline, no server: the file comes from the hub cache
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hfc, "HF_HUB_OFFLINE", True)
    rep2 = install_dataset("uc_merced", tmp_path / "data2", entry=entry(hub_url, archive), progress=False, splits=UCM)
    assert rep2["status"] == "installed" and rep2["files"][0]["revision"] == COMMIT


def test_offline_errors_name_the_url_and_where_to_put_the_file(tmp_path, archive):
    url = "https://zenodo.org/records/5706578/files/Train.zip?download=1"
    with pytest.raises(DownloadError, match=r"downloads are off.*download https://zenodo\.org/records/5706578/files/"
                                            r"Train\.zip\?download=1 by hand and place it at .*dl/Train\.zip"):
        fetch(RemoteFile("Train.zip", url, md5="0" * 32), tmp_path / "dl", progress=False)
    hub = f"https://hf.co/datasets/torchgeo/ucmerced/resolve/{COMMIT}/UCMerced_LandUse.zip"
    with pytest.raises(DownloadError, match=r"not in the Hugging Face cache.*by hand and place it at .*UCMerced_LandUse\.zip"):
        fetch(RemoteFile("UCMerced_LandUse.zip", hub, md5="0" * 32), tmp_path / "dl", progress=False)
    # a file placed there by hand is verified and used, offline
    (tmp_path / "dl").mkdir()
    (tmp_path / "dl" / "UCMerced_LandUse.zip").write_bytes(archive)
    res = fetch(RemoteFile("UCMerced_LandUse.zip", hub, md5=md5(archive)), tmp_path / "dl", progress=False)
    assert res.how == "present"


def test_licence_is_printed_and_must_be_accepted_once(tmp_path, archive, online):
    lines: list[str] = []
    with LoopbackServer() as srv:
        url = srv.add("/u.zip", archive)
        e = entry(url, archive, public_domain=False)
        with pytest.raises(DataError, match=r"accept its licence \(CC BY-NC-SA 4\.0 \(test\)\).*--yes"):
            install(tmp_path, e, log=lines.append)
        assert srv.log == [] and any("CC BY-NC-SA" in ln for ln in lines)  # printed, nothing downloaded
        with pytest.raises(DataError, match="licence not accepted"):
            accept_licence(e, interactive=True, ask=lambda question: "n", log=lines.append)
        lines.clear()
        install(tmp_path, e, yes=True, log=lines.append)
        assert any("CC BY-NC-SA" in ln for ln in lines)
        rec = json.loads((tmp_path / "satbench_home" / "licences.json").read_text())
        assert rec["uc_merced"]["licence"] == "CC BY-NC-SA 4.0 (test)" and rec["uc_merced"]["how"] == "--yes"
        lines.clear()
        (tmp_path / "satbench_home" / "downloads" / "uc_merced" / "UCMerced_LandUse.zip").unlink()
        install_dataset("uc_merced", tmp_path / "other", entry=e, progress=False, splits=UCM, log=lines.append)
        assert not any("CC BY-NC-SA" in ln for ln in lines)  # accepted once: not asked again


def test_manual_datasets_print_one_paragraph(tmp_path):
    rep = install_dataset("potsdam", tmp_path / "data")
    assert rep["status"] == "manual"
    p = rep["manual"]
    assert "\n" not in p and "2_Ortho_RGB.zip (no checksum known" in p and "5_Labels_all_noBoundary.zip" in p
    assert "ISPRS" in p and "satbench data prepare potsdam --src" in p
    assert str(tmp_path / "satbench_home" / "downloads" / "potsdam") in p
    v = install_dataset("vaihingen", tmp_path / "data")["manual"]
    assert "ISPRS_semantic_labeling_Vaihingen.zip (md5 462b8dca7b6fa9eaf729840f0cdfc7f3)" in v
    w = install_dataset("whu-rs19", tmp_path / "data")["manual"]
    assert "WHU-RS19.zip" in w and "satbench data prepare whu-rs19 --src DIR --out ROOT" in w and "Licence:" in w
    assert leftovers(tmp_path / "data") == []


def test_manual_files_placed_by_hand_get_first_use_checksums(tmp_path, archive):
    """A dataset with no published checksum: computed on first use, recorded, enforced afterwards."""
    e = DatasetSource(name="uc_merced", title="UCM (manual test)", kind="scene", files=(RemoteFile("UCM.zip"),),
                      licence="test", public_domain=True, citation="c", homepage="h", manual="get it by hand")
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "UCM.zip").write_bytes(archive)
    lines: list[str] = []
    rep = install(tmp_path, e, files_dir=tmp_path / "files", log=lines.append)
    assert rep["status"] == "installed" and rep["files"][0]["checksum"] == "first-use"
    assert any("no published checksum is known for UCM.zip; computed on first use" in ln for ln in lines)
    rec = json.loads((tmp_path / "satbench_home" / "downloads" / "checksums.json").read_text())
    assert rec["manual:UCM.zip"]["md5"] == md5(archive)
    (tmp_path / "files" / "UCM.zip").write_bytes(ucm_zip(classes=21, per_class=19))  # a different archive later
    with pytest.raises(DownloadError, match="checksum recorded on first use"):
        install_dataset("uc_merced", tmp_path / "again", entry=e, files_dir=tmp_path / "files", progress=False)


def test_existing_dataset_folder_is_never_overwritten(tmp_path, archive, online):
    (tmp_path / "data" / "uc_merced").mkdir(parents=True)
    (tmp_path / "data" / "uc_merced" / "mine.txt").write_text("keep")
    with LoopbackServer() as srv:
        url = srv.add("/u.zip", archive)
        with pytest.raises(DataError, match=r"already exists but does not pass the check.*never overwrites"):
            install(tmp_path, entry(url, archive))
        assert srv.log == []
    assert (tmp_path / "data" / "uc_merced" / "mine.txt").read_text() == "keep"


def test_cli_list_manual_and_mismatch(tmp_path, capsys, archive):
    from satbench.cli.app import main

    assert main(["data", "download", "--list"]) == 0
    out = capsys.readouterr().out
    assert "UCMerced_LandUse.zip" in out and "zenodo" in out and "manual" in out
    assert main(["data", "download", "whu-rs19", "--root", str(tmp_path / "data")]) == 1
    err = capsys.readouterr()
    assert "WHU-RS19" in err.out and "not downloaded (manual source" in err.err
    # a UCMerced_LandUse.zip placed by hand that is not the published file: refused before unpacking
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "UCMerced_LandUse.zip").write_bytes(archive)
    assert main(["data", "download", "ucm", "--root", str(tmp_path / "data"), "--files", str(tmp_path / "files")]) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and "5b7ec56793786b6dc8a908e8854ac0e4" in err
    assert leftovers(tmp_path / "data") == []
    assert main(["data", "download", "ucm"]) == 2 and "pass --root DIR" in capsys.readouterr().err


@pytest.mark.slow  # importing mmseg's stack alone takes 10-20 s on the shared test machine
def test_loveda_zips_go_to_mmseg_converter(tmp_path, online):
    """A segmentation dataset: zips are inspected (not unpacked) and handed to mmseg's converter, then checked."""
    pytest.importorskip("mmseg")
    from support.seg import loveda_zips as _loveda_zips

    _loveda_zips(tmp_path / "z")
    with LoopbackServer() as srv:
        files = []
        for split in ("Train", "Val", "Test"):
            data = (tmp_path / "z" / f"{split}.zip").read_bytes()
            files.append(RemoteFile(f"{split}.zip", srv.add(f"/records/5706578/files/{split}.zip", data), md5=md5(data)))
        real = get_source("loveda")
        e = DatasetSource(name="loveda", title=real.title, kind="segmentation", files=tuple(files), licence=real.licence,
                          public_domain=False, citation=real.citation, homepage=real.homepage)
        rep = install_dataset("loveda", tmp_path / "data", entry=e, yes=True, progress=False)
    assert rep["status"] == "installed" and rep["check"]["counts"] == {"train": 3, "val": 1}
    assert (tmp_path / "data" / "loveda" / "img_dir" / "train").is_dir()
    assert leftovers(tmp_path / "data") == ["loveda"]


def test_source_table_is_consistent():
    """Every dataset with a preparer has a source; folders match the preparers'; checksums are well-formed."""
    import re

    from satbench.data.prepare import preparable
    from satbench.data.sources import SOURCES

    assert set(preparable()) == set(SOURCES)
    for name, src in SOURCES.items():
        assert src.target == name and src.licence and src.citation and src.homepage
        assert src.downloadable or src.manual
        for rf in [*src.files, *(f for alt in src.alternatives.values() for f in alt)]:
            assert rf.md5 is None or re.fullmatch(r"[0-9a-f]{32}", rf.md5)
            assert rf.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", rf.sha256)
            assert rf.url is None or rf.url.startswith("https://")
            if rf.url and parse_hub_url(rf.url):
                assert re.fullmatch(r"[0-9a-f]{40}", parse_hub_url(rf.url).revision)  # pinned to a commit


def test_a_first_use_checksum_is_recorded_only_once_the_archive_installed(tmp_path, archive):
    """An archive without a published checksum that is refused (a ``..`` member) must not become the expected
    checksum: the good archive placed afterwards installs, and only then is its checksum recorded."""
    e = DatasetSource(name="uc_merced", title="UCM (manual test)", kind="scene", files=(RemoteFile("UCM.zip"),),
                      licence="test", public_domain=True, citation="c", homepage="h", manual="get it by hand")
    tofu = tmp_path / "satbench_home" / "downloads" / "checksums.json"
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "UCM.zip").write_bytes(_zip_with({"UCMerced_LandUse/Images/a/ok.jpg": b"x", "../x": b"p"}))
    with pytest.raises(DataError, match="refused to unpack"):
        install(tmp_path, e, files_dir=tmp_path / "files")
    assert not tofu.exists(), "a refused archive was recorded as the expected checksum"
    (tmp_path / "files" / "UCM.zip").write_bytes(archive)
    lines: list[str] = []
    rep = install(tmp_path, e, files_dir=tmp_path / "files", log=lines.append)
    assert rep["status"] == "installed"
    assert json.loads(tofu.read_text())["manual:UCM.zip"]["md5"] == md5(archive)
    assert any("recorded once the dataset is installed" in ln for ln in lines)


def test_a_second_download_of_the_same_dataset_fails_at_once_naming_the_first(tmp_path, archive):
    """Two `data download` runs share one download folder (and its .part files): the second is refused at once."""
    from satbench.io.locking import OutputLockedError

    folder = tmp_path / "files"
    e = entry("http://127.0.0.1:9/never.zip", archive)
    with lock_holder(folder) as pid:  # the first run, still going
        t0 = time.perf_counter()
        with pytest.raises(OutputLockedError, match=rf"output folder {folder} is in use by another satbench run: pid {pid} "):
            install(tmp_path, e, files_dir=folder)
        assert time.perf_counter() - t0 < 5
    assert not (tmp_path / "data").exists()
