"""``satbench data download`` against servers that misbehave (issue 27): every case ends, quickly, with one line.

The CLI runs in-process with the uc_merced source pointed at a loopback server (HTTP, or HTTPS with a self-signed
certificate trusted through ``SSL_CERT_FILE``), so the real ``http_download`` path is what is exercised. Each run is
in a thread with a deadline: before the fix the stalling cases never returned.
"""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import pytest

from satbench.data.sources import DatasetSource, RemoteFile, get_source
from satbench.io.download import fetch
from satbench.io.download_guard import downgrade, space_shortfall
from support.loopback_http import LoopbackServer, self_signed

UCM = Path(__file__).resolve().parents[2] / "satbench" / "data" / "bundled" / "ucm-mini"
PATH = "/UCMerced_LandUse.zip"


@pytest.fixture(scope="module")
def payload() -> bytes:
    """Real bytes: the bundled UC Merced images, concatenated (the checksum guards them; nothing is unpacked)."""
    return b"".join(f.read_bytes() for f in sorted((UCM / "images").rglob("*"))[:60] if f.is_file())


@pytest.fixture
def online(monkeypatch):
    monkeypatch.delenv("SATBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


@pytest.fixture(scope="module")
def cert(tmp_path_factory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def point_ucm_at(monkeypatch, url: str, data: bytes) -> None:
    real = get_source("uc_merced")
    src = DatasetSource(name="uc_merced", title=real.title, kind="scene",
                        files=(RemoteFile("UCMerced_LandUse.zip", url, md5=hashlib.md5(data).hexdigest()),),
                        licence=real.licence, public_domain=True, citation=real.citation, homepage=real.homepage)
    for mod in ("satbench.data.sources", "satbench.data.install"):
        monkeypatch.setattr(f"{mod}.get_source", lambda name, _src=src: _src)


def cli(tmp_path, *extra: str, deadline: float = 60.0) -> tuple[int, float]:
    """``satbench data download uc_merced`` in a thread; ``(exit code, seconds)``; fails if it runs past ``deadline``."""
    from satbench.cli.app import main

    out: dict[str, int] = {}
    argv = ["data", "download", "uc_merced", "--root", str(tmp_path / "data"), "--files", str(tmp_path / "dl"),
            "--no-progress", *extra]
    t = threading.Thread(target=lambda: out.setdefault("rc", main(argv)), daemon=True)
    t0 = time.perf_counter()
    t.start()
    t.join(deadline)
    took = time.perf_counter() - t0
    assert not t.is_alive(), f"`satbench {' '.join(argv)}` still running after {deadline:.0f} s (a download that never ends)"
    return out["rc"], took


def test_a_server_that_stalls_and_ignores_range_ends_after_the_retries(tmp_path, payload, online, monkeypatch, capsys):
    with LoopbackServer(ignore_range=True) as srv:
        point_ucm_at(monkeypatch, srv.add(PATH, payload), payload)
        srv.fault(PATH, "stall", at=100, seconds=30, sticky=True)  # 100 bytes, then silence, every time
        rc, took = cli(tmp_path, "--timeout", "0.5", "--retries", "2")
        gets = srv.gets(PATH)
    err = capsys.readouterr().err
    assert rc == 2 and "after 2 retries" in err and "ReadTimeout" in err and len(err.strip().splitlines()) == 1
    assert len(gets) == 3 and all(g["range"] is None or g["status"] == 200 for g in gets)
    assert took < 10, took  # 3 timeouts of 0.5 s + back-off 1 + 2 s


def test_a_server_that_closes_early_and_ignores_range_ends_after_the_retries(tmp_path, payload, online, monkeypatch,
                                                                              capsys):
    with LoopbackServer(ignore_range=True) as srv:
        point_ucm_at(monkeypatch, srv.add(PATH, payload), payload)
        srv.fault(PATH, "cut", at=5000, sticky=True)  # announces the full length, sends 5000 bytes, closes
        rc, took = cli(tmp_path, "--retries", "1")
        gets = srv.gets(PATH)
    err = capsys.readouterr().err
    assert rc == 2 and "after 1 retries" in err and len(gets) == 2, (err, gets)
    assert (tmp_path / "dl" / "UCMerced_LandUse.zip.part").stat().st_size == 5000  # kept; resumed next time
    assert took < 5, took


def test_a_content_length_beyond_the_free_disk_is_refused_before_writing(tmp_path, payload, online, monkeypatch,
                                                                          capsys):
    with LoopbackServer() as srv:
        point_ucm_at(monkeypatch, srv.add(PATH, payload), payload)
        srv.fault(PATH, "announce", length=10 ** 15, sticky=True)
        rc, took = cli(tmp_path)
        gets = srv.gets(PATH)
    err = capsys.readouterr().err
    assert rc == 2 and len(gets) == 1 and len(err.strip().splitlines()) == 1
    assert "announces 1000000000000000 bytes (1.0 PB)" in err and f"but {tmp_path / 'dl'} has only " in err
    assert not (tmp_path / "dl" / "UCMerced_LandUse.zip.part").exists()
    assert took < 2, took


def test_a_certificate_that_fails_verification_is_not_retried(tmp_path, payload, online, monkeypatch, capsys, cert):
    with LoopbackServer(tls=cert) as srv:  # self-signed, and SSL_CERT_FILE does not name it
        point_ucm_at(monkeypatch, srv.add(PATH, payload), payload)
        rc, took = cli(tmp_path)
    err = capsys.readouterr().err
    assert rc == 2 and "TLS certificate failed verification" in err and "SSL_CERT_FILE" in err and "not retried" in err
    assert took < 1.0, took  # no back-off sleep (the first would be 1 s; five took 31 s)


def test_https_with_a_trusted_certificate_downloads(tmp_path, payload, online, monkeypatch, cert):
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
    with LoopbackServer(tls=cert) as srv:
        url = srv.add(PATH, payload)
        assert url.startswith("https://")
        res = fetch(RemoteFile("u.zip", url, md5=hashlib.md5(payload).hexdigest()), tmp_path, progress=False)
    assert res.how == "http" and (tmp_path / "u.zip").read_bytes() == payload


def test_a_redirect_to_file_is_not_retried(tmp_path, payload, online, monkeypatch, capsys):
    with LoopbackServer() as srv:
        point_ucm_at(monkeypatch, srv.add(PATH, payload), payload)
        srv.fault(PATH, "redirect", location="file:///etc/passwd", sticky=True)
        rc, took = cli(tmp_path)
        gets = srv.gets(PATH)
    err = capsys.readouterr().err
    assert rc == 2 and len(gets) == 1 and "only http(s) is followed" in err and "not retried" in err
    assert took < 1.0, took


def test_an_https_url_redirected_to_http_is_refused_before_the_request(tmp_path, payload, online, monkeypatch, capsys,
                                                                       cert):
    monkeypatch.setenv("SSL_CERT_FILE", str(cert[0]))
    with LoopbackServer() as plain, LoopbackServer(tls=cert) as tls:
        target = plain.add(PATH, payload)
        point_ucm_at(monkeypatch, tls.add(PATH, payload), payload)
        tls.fault(PATH, "redirect", location=target, sticky=True)
        rc, took = cli(tmp_path)
        assert len(tls.gets(PATH)) == 1 and plain.log == []  # the plain-http request was never sent
    err = capsys.readouterr().err
    assert rc == 2 and "redirected to plain http" in err and "refuses the downgrade" in err
    assert took < 1.0, took


def test_the_checks_on_their_own(tmp_path):
    assert downgrade("https://a/x", "http://b/x") and not downgrade("http://a/x", "http://b/x")
    assert not downgrade("https://a/x", "https://b/x")
    assert space_shortfall(tmp_path / "f.part", 10 ** 15) and space_shortfall(tmp_path / "f.part", 10) is None


def test_a_fetch_that_advances_by_drips_is_bounded(tmp_path, payload, online):
    from satbench.io.download import DownloadError, http_download

    with LoopbackServer(ignore_range=True) as srv:  # every attempt gets a little further, and is cut again
        url = srv.add(PATH, payload)
        for i in range(1, 20):
            srv.fault(PATH, "cut", at=100 * i)
        t0 = time.perf_counter()
        with pytest.raises(DownloadError, match=r"in 6 attempts \(the bound on one fetch; 600 bytes so far"):
            http_download(url, tmp_path / "f.part", retries=1, backoff=0.001, progress=False, max_attempts=6)
        assert len(srv.gets(PATH)) == 6 and time.perf_counter() - t0 < 5


def test_progress_still_resets_the_retries(tmp_path, payload, online):
    """Cuts that each advance the file do not use up the retries (the probe's resume case stays correct)."""
    with LoopbackServer() as srv:
        url = srv.add(PATH, payload)
        for at in (1000, 2000, 3000, 4000):
            srv.fault(PATH, "cut", at=at)
        res = fetch(RemoteFile("u.zip", url, md5=hashlib.md5(payload).hexdigest()), tmp_path, progress=False,
                    retries=1, backoff=0.001)
        assert [g["range"] for g in srv.gets(PATH)] == [None, "bytes=1000-", "bytes=3000-", "bytes=6000-",
                                                        "bytes=10000-"]
    assert (tmp_path / "u.zip").read_bytes() == payload
