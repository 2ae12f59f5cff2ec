"""The feature cache trusts nothing by its name: entries carry their key and the sha256 of their array, symbolic links
and special files inside the cache are never followed or opened, image files are identified by more than the split
file, an unusable cache folder only turns caching off, and `cache ls` / `cache clear` touch only satbench's entries.

Real bundled images and the tiny test card (tests/fixtures/cards) keep each run to about a second.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from satbench.eval.cache import FORMAT, FeatureCache
from satbench.cli.app import main
from satbench.runtime.resources import bundled_data_dir
from support.paths import REPO
from support.builders import scene_folder

CARDS = REPO / "tests" / "fixtures" / "cards"
UCM = bundled_data_dir() / "ucm-mini"
CLASSES = ("airplane", "beach", "forest")

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def _test_cards(monkeypatch):
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))


def _dataset(tmp_path: Path, name: str = "cachetrust") -> Path:
    """3 classes of real bundled images, 4 train + 3 val each, in the official layout."""
    return scene_folder(tmp_path, name, CLASSES, train=4, val=3)


def _argv(tmp_path: Path, cache: Path | None, dataset: Path | None = None, *extra: str) -> list[str]:
    argv = ["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random", "--scales", "0.25", "0.125",
            "--k", "1", "--no-progress", "--num-workers", "0", "--results-dir", str(tmp_path / "res")]
    if dataset is not None:
        argv += ["--dataset", str(dataset), "--normalization", "imagenet", "--native-size", "256"]
    argv += ["--cache-dir", str(cache)] if cache is not None else ["--no-cache"]
    return argv + list(extra)


def _run(capsys, argv: list[str]) -> tuple[dict, list[str]]:
    """Run the CLI; (the new record, satbench warning lines). No traceback, exit 0."""
    res = Path(argv[argv.index("--results-dir") + 1])
    before = set(res.glob("*.json")) if res.exists() else set()
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err, err
    (new,) = set(res.glob("*.json")) - before
    return json.loads(new.read_text()), [ln for ln in err.splitlines() if ln.startswith("satbench: warning:")]


def _entries(cache: Path) -> dict[tuple[str, int], Path]:
    """{(view, n): .npy path} of the cache's entries."""
    out = {}
    for meta in cache.glob("*/*.json"):
        m = json.loads(meta.read_text())
        if m.get("format") != FORMAT or "view" not in m:
            continue  # a foreign file of the test
        out[(m["view"], m["n"])] = meta.with_suffix(".npy")
    return out


def _cli(capsys, *argv: str) -> tuple[str, list[str]]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err, err
    return out, [ln for ln in err.splitlines() if ln.strip()]


def _small_view(entries: dict) -> tuple[Path, Path]:
    """(the val entry of one scale, the val entry of the other): same shape, different real features."""
    n_val = min(n for _, n in entries)
    val = sorted(p for (view, n), p in entries.items() if n == n_val)
    assert len(val) == 2
    return val[0], val[1]


# ---------------------------------------------------------------------------------------------------------------------
# cache clear / ls never touch what satbench did not write
# ---------------------------------------------------------------------------------------------------------------------
def _foreign_tree(d: Path) -> list[Path]:
    """A thesis-like folder: notes, a nested folder, a two-hex-character folder and files named like cache entries."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "chapter1.tex").write_text("\\chapter{Intro}\n")
    (d / "figures").mkdir(exist_ok=True)
    (d / "figures" / "plot.json").write_text('{"x": [1, 2]}\n')
    (d / "ab").mkdir(exist_ok=True)
    (d / "ab" / "notes.txt").write_text("keep\n")
    digest = "ab" + "0" * 62
    (d / "ab" / f"{digest}.json").write_text(json.dumps({"key": {"mine": 1}, "shape": [2], "dtype": "float32"}))
    np.save(d / "ab" / f"{digest}.npy", np.zeros(2, np.float32))
    (d / "ab" / f"{'ab' + '1' * 62}.json").write_text(json.dumps({"format": FORMAT, "key": {"forged": 1}}))
    return [p for p in d.rglob("*")]


def test_clear_on_a_folder_without_entries_deletes_nothing(tmp_path, capsys, monkeypatch):
    thesis = tmp_path / "thesis"
    files = _foreign_tree(thesis)
    out, _ = _cli(capsys, "cache", "clear", "--dir", str(thesis))
    assert "removed 0 entries" in out and "left alone" in out
    assert all(p.exists() for p in files) and thesis.is_dir()
    monkeypatch.setenv("SATBENCH_CACHE", str(thesis))
    out, _ = _cli(capsys, "cache", "clear")
    assert "removed 0 entries" in out
    assert all(p.exists() for p in files)
    out, _ = _cli(capsys, "cache", "ls")
    assert "0 entries" in out


def test_clear_on_a_mixed_folder_deletes_exactly_the_entries(tmp_path, capsys):
    cache = tmp_path / "cache"
    files = _foreign_tree(cache)
    _run(capsys, _argv(tmp_path, cache))
    entries = _entries(cache)
    assert len(entries) == 4
    leftover = entries[next(iter(entries))].parent / f".{entries[next(iter(entries))].name}.abcd1234.tmp"
    leftover.write_bytes(b"half an array")  # an interrupted write of satbench's own
    out, _ = _cli(capsys, "cache", "ls", "--dir", str(cache))
    assert "4 entries" in out
    out, _ = _cli(capsys, "cache", "clear", "--dir", str(cache))
    assert "removed 4 entries (9 files)" in out, out
    assert not any(p.exists() or p.with_suffix(".json").exists() for p in entries.values()) and not leftover.exists()
    assert all(p.exists() for p in files) and cache.is_dir()


# ---------------------------------------------------------------------------------------------------------------------
# entries are trusted by content, not by name
# ---------------------------------------------------------------------------------------------------------------------
def test_replaced_array_of_the_right_shape_is_detected_and_recomputed(tmp_path, capsys):
    cache = tmp_path / "cache"
    first, warns = _run(capsys, _argv(tmp_path, cache))
    assert not warns
    victim, other = _small_view(_entries(cache))
    shutil.copy(other, victim)  # a valid .npy of the right shape and dtype, another view's real features
    rec, warns = _run(capsys, _argv(tmp_path, cache))
    assert len(warns) == 1 and str(victim) in warns[0] and "sha256" in warns[0] and "recomputing" in warns[0], warns
    assert rec["metrics"] == first["metrics"]
    rec, warns = _run(capsys, _argv(tmp_path, cache))  # rewritten: served from the cache, no warning
    assert not warns and rec["extra"]["cache"]["hits"] == 4 and rec["metrics"] == first["metrics"]


def test_entry_copied_under_another_name_is_not_used(tmp_path, capsys):
    cache = tmp_path / "cache"
    first, _ = _run(capsys, _argv(tmp_path, cache))
    victim, other = _small_view(_entries(cache))
    shutil.copy(other, victim)
    shutil.copy(other.with_suffix(".json"), victim.with_suffix(".json"))  # a complete, self-consistent foreign entry
    rec, warns = _run(capsys, _argv(tmp_path, cache))
    assert len(warns) == 1 and str(victim.with_suffix(".json")) in warns[0], warns
    assert rec["metrics"] == first["metrics"]


def test_symlinks_inside_the_cache_are_never_followed(tmp_path, capsys):
    cache = tmp_path / "cache"
    first, _ = _run(capsys, _argv(tmp_path, cache))
    victim, other = _small_view(_entries(cache))
    victim.unlink()
    victim.symlink_to(other)  # a link to another valid entry's array
    rec, warns = _run(capsys, _argv(tmp_path, cache))
    assert len(warns) == 1 and str(victim) in warns[0] and "symbolic link" in warns[0], warns
    assert rec["metrics"] == first["metrics"]
    assert not victim.is_symlink() and victim.is_file() and other.is_file()  # rewritten in place of the link

    # a shard folder that is a link to a folder elsewhere: neither read nor written through
    outside = tmp_path / "outside"
    shard = victim.parent
    shutil.copytree(shard, outside)
    shutil.rmtree(shard)
    shard.symlink_to(outside, target_is_directory=True)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in outside.iterdir())
    rec, warns = _run(capsys, _argv(tmp_path, cache))
    assert warns and all("symbolic link" in w or "not a cache folder" in w for w in warns), warns
    assert rec["metrics"] == first["metrics"]
    assert sorted((p.name, p.stat().st_mtime_ns) for p in outside.iterdir()) == before
    out, _ = _cli(capsys, "cache", "clear", "--dir", str(cache))
    assert shard.is_symlink() and sorted((p.name, p.stat().st_mtime_ns) for p in outside.iterdir()) == before


# ---------------------------------------------------------------------------------------------------------------------
# the key identifies the image contents
# ---------------------------------------------------------------------------------------------------------------------
def _replace_keeping_size_and_mtime(target: Path, donor_candidates: list[Path]) -> None:
    """Overwrite ``target`` in place with another real JPEG, zero-padded after its end marker to the same size, and
    put the old mtime back (what ``cp -p`` / ``rsync -t`` / ``touch -r`` do): only ctime tells the change."""
    st = target.stat()
    old = target.read_bytes()
    donor = next(p.read_bytes() for p in donor_candidates if len(p.read_bytes()) <= len(old) and p.read_bytes() != old)
    with open(target, "r+b") as fh:
        fh.write(donor + b"\0" * (len(old) - len(donor)))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)


@pytest.mark.parametrize("identity", ["stat", "sha256"])
def test_images_changed_in_place_give_the_no_cache_numbers(identity, tmp_path, capsys):
    ds = _dataset(tmp_path)
    cache = tmp_path / "cache"
    extra = ("--cache-identity", identity)
    first, _ = _run(capsys, _argv(tmp_path, cache, ds, *extra))
    assert first["extra"]["extraction"]["cache_identity"] == identity
    again, _ = _run(capsys, _argv(tmp_path, cache, ds, *extra))
    assert again["extra"]["cache"]["hits"] == 4  # nothing changed: served from the cache
    # every val image of one class becomes a real image of another class, under the same name
    donors = sorted((p for p in (UCM / "images").glob("*/*.jpg") if p.parent.name != "airplane"),
                    key=lambda p: p.stat().st_size)
    for line in (ds / "val.txt").read_text().split():
        if line.split("/")[1] == "airplane":
            _replace_keeping_size_and_mtime(ds / "images" / line[2:], donors)
    cached, warns = _run(capsys, _argv(tmp_path, cache, ds, *extra))
    fresh, _ = _run(capsys, [a for a in _argv(tmp_path, None, ds)])
    assert not warns
    assert cached["extra"]["cache"]["hits"] == 2, "the val features must be recomputed, the train ones reused"
    assert cached["metrics"] == fresh["metrics"]


def test_identity_modes_are_recorded_and_keyed_separately():
    paths = sorted((UCM / "images" / "beach").glob("*.jpg"))[:3]
    c_stat, c_sha = FeatureCache("unused", identity="stat"), FeatureCache("unused", identity="sha256")
    a, b = c_stat.image_identity(paths), c_sha.image_identity(paths)
    assert a["mode"] == "stat" and b["mode"] == "sha256" and a["sha256"] != b["sha256"] and a["n"] == 3
    assert c_sha.image_identity(paths) == b and c_sha.image_identity(paths[::-1]) != b


# ---------------------------------------------------------------------------------------------------------------------
# bounded reads: deep JSON, huge .npy header
# ---------------------------------------------------------------------------------------------------------------------
def _deep_json(path: Path, depth: int = 200_000) -> None:
    path.write_text("[" * depth + "]" * depth)


def _huge_header(path: Path) -> None:
    """Keep the file's data, declare shape (2**40, 192) in a valid .npy header."""
    from numpy.lib import format as npf

    arr = np.load(path)
    with open(path, "wb") as fh:
        npf.write_array_header_1_0(fh, {"descr": npf.dtype_to_descr(arr.dtype), "fortran_order": False,
                                         "shape": (2**40, 192)})
        fh.write(arr.tobytes())


@pytest.mark.parametrize("depth", [200_000, 5_000])  # over the size cap / under it but too deep
def test_deep_json_is_damaged_in_run_ls_and_clear(depth, tmp_path, capsys):
    cache = tmp_path / "cache"
    first, _ = _run(capsys, _argv(tmp_path, cache))
    victim, _ = _small_view(_entries(cache))
    meta = victim.with_suffix(".json")
    _deep_json(meta, depth)
    out, errs = _cli(capsys, "cache", "ls", "--dir", str(cache))
    assert "3 entries" in out and len(errs) == 1 and str(meta) in errs[0], errs
    out, errs = _cli(capsys, "cache", "clear", "--dir", str(cache))
    assert "removed 3 entries" in out and len(errs) == 1 and str(meta) in errs[0], errs
    assert meta.exists() and victim.exists(), "not recognisable as satbench's: left alone"
    _run(capsys, _argv(tmp_path, cache))  # refill the other entries
    _deep_json(meta, depth)
    rec, warns = _run(capsys, _argv(tmp_path, cache))
    assert len(warns) == 1 and str(meta) in warns[0] and "recomputing" in warns[0], warns
    assert rec["metrics"] == first["metrics"] and json.loads(meta.read_text())["format"] == FORMAT


def test_huge_npy_header_is_damaged_in_run_ls_and_clear(tmp_path, capsys):
    cache = tmp_path / "cache"
    first, _ = _run(capsys, _argv(tmp_path, cache))
    victim, _ = _small_view(_entries(cache))
    _huge_header(victim)
    rec, warns = _run(capsys, _argv(tmp_path, cache))
    assert len(warns) == 1 and str(victim) in warns[0] and "1099511627776" in warns[0], warns
    assert rec["metrics"] == first["metrics"]
    _huge_header(victim)
    out, errs = _cli(capsys, "cache", "ls", "--dir", str(cache))
    assert "3 entries, 1 damaged" in out and len(errs) == 1 and str(victim.with_suffix(".json")) in errs[0], errs
    out, errs = _cli(capsys, "cache", "clear", "--dir", str(cache))
    assert "removed 4 entries" in out and len(errs) == 1, errs
    assert not victim.exists() and not victim.with_suffix(".json").exists()


# ---------------------------------------------------------------------------------------------------------------------
# an unusable cache folder: a warning, no cache, a record
# ---------------------------------------------------------------------------------------------------------------------
def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder the OS really refuses to create files in (chmod for a normal user, sysfs as root)."""
    import tempfile

    if os.geteuid() != 0:
        d = tmp_path / "read_only"
        d.mkdir()
        d.chmod(0o555)
        return d
    d = Path("/sys/kernel")
    try:
        fd, p = tempfile.mkstemp(dir=d)
    except OSError:
        return d
    os.close(fd)
    os.unlink(p)
    pytest.skip("no unwritable folder available on this machine")


def test_read_only_cache_folder_warns_and_still_writes_a_record(tmp_path, capsys, monkeypatch):
    import satbench.eval.extract as ex

    folder = _unwritable_folder(tmp_path)
    calls = []
    real = ex.extract_views
    monkeypatch.setattr("satbench.eval.knn_run.extract_views", lambda *a, **k: calls.append(1) or real(*a, **k))
    rec, warns = _run(capsys, _argv(tmp_path, folder))
    assert len(warns) == 1 and f"feature cache folder {folder}" in warns[0] and "without the feature cache" in warns[0]
    assert calls, "the run went on"
    assert rec["extra"]["cache"]["enabled"] is False and str(folder) in rec["extra"]["extraction"]["cache_off"]
    # through $SATBENCH_HOME, the folder the issue names
    monkeypatch.setenv("SATBENCH_HOME", str(folder))
    rec, warns = _run(capsys, _argv(tmp_path, None)[:-1])
    assert len(warns) == 1 and str(folder / "cache" / "features") in warns[0], warns
    assert rec["extra"]["cache"]["enabled"] is False


def test_cache_dir_that_is_a_file_warns_and_still_writes_a_record(tmp_path, capsys):
    blocker = tmp_path / "cache_is_a_file"
    blocker.write_text("not a folder\n")
    rec, warns = _run(capsys, _argv(tmp_path, blocker / "features"))
    assert len(warns) == 1 and "not usable" in warns[0], warns
    assert rec["extra"]["cache"]["enabled"] is False and blocker.read_text() == "not a folder\n"


# ---------------------------------------------------------------------------------------------------------------------
# special files: never opened
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifos_in_the_cache_do_not_hang(tmp_path, capsys):
    cache = tmp_path / "cache"
    first, _ = _run(capsys, _argv(tmp_path, cache))
    victim, other = _small_view(_entries(cache))
    fifos = [victim.with_suffix(".json"), other, cache / "stray.fifo"]
    for f in fifos:
        f.unlink(missing_ok=True)
        os.mkfifo(f)
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    cli = [sys.executable, "-m", "satbench.cli"]
    for argv in (_argv(tmp_path, cache), ["cache", "ls", "--dir", str(cache)], ["cache", "clear", "--dir", str(cache)]):
        p = subprocess.run(cli + argv, capture_output=True, text=True, env=env, timeout=120)
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert (cache / "stray.fifo").exists()  # not ours: left alone
    rec = max((json.loads(p.read_text()) for p in (tmp_path / "res").glob("*.json")), key=lambda r: r["provenance"]["date"])
    assert rec["metrics"] == first["metrics"]


# ---------------------------------------------------------------------------------------------------------------------
# the store itself
# ---------------------------------------------------------------------------------------------------------------------
def test_entries_of_the_earlier_format_are_listed_as_such_never_used_and_cleared(tmp_path, capsys):
    from satbench.io.atomic import atomic_write_json
    from satbench.io.hashing import canonical_hash

    key = {"v": 1, "model": "m", "split_sha256": "x"}
    digest = canonical_hash(key)
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    (tmp_path / "c" / digest[:2]).mkdir(parents=True)
    np.save(tmp_path / "c" / digest[:2] / f"{digest}.npy", arr)  # as the earlier FeatureCache.put wrote it
    atomic_write_json(tmp_path / "c" / digest[:2] / f"{digest}.json", {"key": key, "shape": [3, 4], "dtype": "float32"})
    cache = FeatureCache(tmp_path / "c")
    assert cache.get(key) is None and cache.corrupt == 1  # no marker, no sha256: never trusted
    capsys.readouterr()
    out, _ = _cli(capsys, "cache", "ls", "--dir", str(tmp_path / "c"))
    assert "0 entries, 1 of an earlier satbench format" in out
    out, _ = _cli(capsys, "cache", "clear", "--dir", str(tmp_path / "c"))
    assert "removed 1 entries (2 files)" in out and not (tmp_path / "c" / digest[:2]).exists()
    assert (tmp_path / "c").is_dir()


def test_a_failed_cache_write_is_a_warning_and_turns_caching_off(tmp_path, capsys, monkeypatch):
    import errno

    import satbench.io.atomic as sio

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    cache = FeatureCache(tmp_path / "c")
    monkeypatch.setattr(sio.os, "fsync", full)
    cache.put({"k": 1}, np.ones((2, 2), np.float32))
    cache.put({"k": 2}, np.ones((2, 2), np.float32))
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no space left on device" in err[0].lower() and "without the feature cache" in err[0]
    assert not cache.enabled and "no space left on device" in cache.describe()["disabled_reason"].lower()
    assert not [p for p in (tmp_path / "c").rglob("*") if p.is_file()], "no partial or temporary file may remain"


def test_roundtrip_metadata_and_probe_leftovers(tmp_path):
    cache = FeatureCache.checked(tmp_path / "c")
    assert cache.enabled and not list((tmp_path / "c").iterdir())  # the probe file is gone
    arr = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    cache.put({"a": [1, 2]}, arr, {"model": "m", "format": "forged"})
    (meta,) = (tmp_path / "c").glob("*/*.json")
    m = json.loads(meta.read_text())
    assert m["format"] == FORMAT and m["key"] == {"a": [1, 2]} and m["digest"] == meta.stem and m["model"] == "m"
    import hashlib

    assert m["sha256"] == hashlib.sha256(meta.with_suffix(".npy").read_bytes()).hexdigest()
    got = cache.get({"a": [1, 2]})
    np.testing.assert_array_equal(got, arr)
    got[0, 0] = 1.0  # a writable array, like np.load's
    (tmp_path / "c" / ".satbench-cache-check-abcd_123.tmp").write_bytes(b"")  # a crashed probe of satbench's
    res = cache.purge(verbose=False)
    assert (res.removed, res.files, res.foreign) == (1, 3, 0) and list((tmp_path / "c").iterdir()) == []
