"""satbench/io/hub_cache.py: entries inside the cache pass (the hub's own relative links), others are named."""

from __future__ import annotations

import pytest

from satbench.io.hub_cache import HubCacheError, check_inside_cache


def test_inside_passes_outside_is_named(tmp_path):
    cache = tmp_path / "hub"
    blob = cache / "models--a--b" / "blobs" / "e1"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"x")
    snap = cache / "models--a--b" / "snapshots" / ("c" * 40)
    snap.mkdir(parents=True)
    (snap / "ok.pth").symlink_to("../../blobs/e1")
    assert check_inside_cache(snap / "ok.pth", cache) == snap / "ok.pth"
    (snap / "bad.pth").symlink_to("/etc/passwd")
    with pytest.raises(HubCacheError, match=r"bad\.pth is a symlink to /etc/passwd, outside the hub cache"):
        check_inside_cache(snap / "bad.pth", cache)
