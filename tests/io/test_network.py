"""No network is detected at once: SATBENCH_OFFLINE / HF_HUB_OFFLINE switch downloads off, and an unreachable host is
one short connection try (never the retry storm of huggingface_hub). Only loopback addresses are used."""

from __future__ import annotations

import socket
import time

import pytest

from satbench.cli.app import main
from satbench.io import network
from support.loopback_http import LoopbackServer


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def online(monkeypatch):
    monkeypatch.delenv("SATBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(network, "_REACHED", {})


@pytest.mark.parametrize("var", ["SATBENCH_OFFLINE", "HF_HUB_OFFLINE"])
def test_either_variable_switches_downloads_off_without_any_connection(var, online, monkeypatch):
    monkeypatch.setenv(var, "1")
    monkeypatch.setattr(network.socket, "create_connection", lambda *a, **k: pytest.fail("connected"))
    assert network.download_blocker("https://huggingface.co") == f"downloads are off ({var})"


def test_unreachable_host_is_one_short_try_and_remembered(online, monkeypatch):
    calls = []
    real = socket.create_connection
    monkeypatch.setattr(network.socket, "create_connection", lambda *a, **k: calls.append(a) or real(*a, **k))
    url = f"http://127.0.0.1:{closed_port()}/x"
    t0 = time.perf_counter()
    why = network.download_blocker(url)
    assert why is not None and why.startswith("127.0.0.1 cannot be reached (") and "refused" in why.lower()
    assert network.download_blocker(url) == why
    assert len(calls) == 1 and time.perf_counter() - t0 < 2
    with LoopbackServer() as srv:
        assert network.download_blocker(srv.url("/f")) is None


def test_run_without_weights_fails_at_once_with_the_way_out_first(online, monkeypatch, capsys):
    """The model's weights are not cached and the hub does not answer: one line, in seconds, saying where to put
    the file; no hub retries, no hub message."""
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    t0 = time.perf_counter()
    code = main(["run", "--task", "knn", "--model", "satdino-vit_small-16", "--no-progress", "--device", "cpu"])
    took = time.perf_counter() - t0
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert code != 0 and took < 10, took
    assert len(err) == 1, err
    assert err[0].startswith("satbench: error: weights for satdino-vit_small-16 (pretrain) are not in the cache: "
                             "place the weight file at ")
    assert err[0].endswith("127.0.0.1 cannot be reached (Connection refused)")


def test_suite_dry_run_does_not_promise_a_download_it_cannot_make(online, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    code = main(["suite", "--model", "satdino-vit_small-16", "--datasets", "ucm-mini", "--tasks", "knn",
                 "--results-dir", str(tmp_path / "r"), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "downloaded" not in out and "127.0.0.1 cannot be reached" in out
