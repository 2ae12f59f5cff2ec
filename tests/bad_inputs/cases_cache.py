"""Bad-input corpus cases for the feature cache (plug-in of make_corpus.py): a cache folder that holds foreign files, a
replaced or symlinked entry, deep JSON metadata, a huge ``.npy`` header, a symlinked shard folder, an image changed in
place, an unusable cache folder. Runs and ``cache ls`` must succeed without a traceback (damaged entries are warnings,
recomputed); ``cache clear`` must delete exactly satbench's entries and leave every other file (``present``).

One real kNN run at build time fills a seed cache (tiny test card, bundled ucm-mini); every case works on its own copy.
FIFOs are covered by tests/test_cache.py in a subprocess with a timeout (a regression there must not hang the
whole corpus run).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .make_corpus import CARDS, UCM, _mini_dataset


def _seed(argv: list[str], cache: Path, out: Path) -> list[Path]:
    """Run ``argv`` once with ``--cache-dir cache`` (build time); the .npy paths of the entries written."""
    from satbench.cli.app import main

    old = os.environ.get("SATBENCH_MODEL_CARDS")
    os.environ["SATBENCH_MODEL_CARDS"] = str(CARDS)
    try:
        code = main(argv + ["--cache-dir", str(cache), "--results-dir", str(out / "cache_seed_results")])
    finally:
        if old is None:
            os.environ.pop("SATBENCH_MODEL_CARDS", None)
        else:
            os.environ["SATBENCH_MODEL_CARDS"] = old
    if code != 0:
        raise RuntimeError(f"seeding the corpus feature cache failed (exit {code})")
    return sorted(meta.with_suffix(".npy") for meta in cache.glob("*/*.json"))


def _copy(seed: Path, dst: Path, seed_entries: list[Path]) -> list[Path]:
    shutil.copytree(seed, dst, symlinks=True, dirs_exist_ok=True)
    return [dst / p.relative_to(seed) for p in seed_entries]


def _thesis(d: Path) -> list[Path]:
    """Files a user keeps in a folder that is (mistakenly) the cache folder; some are named like cache entries."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "thesis.tex").write_text("\\documentclass{article}\n")
    (d / "data").mkdir(exist_ok=True)
    (d / "data" / "table.csv").write_text("a,b\n1,2\n")
    (d / "7f").mkdir(exist_ok=True)
    name = "7f" + "e" * 62
    (d / "7f" / f"{name}.json").write_text(json.dumps({"format": "satbench.feature-cache/1", "key": {"x": 1},
                                                      "shape": [2], "dtype": "float32"}))
    np.save(d / "7f" / f"{name}.npy", np.ones(2, np.float32))
    return sorted(d.rglob("*")) + [d]


def _huge_header(path: Path) -> None:
    from numpy.lib import format as npf

    arr = np.load(path)
    with open(path, "wb") as fh:
        npf.write_array_header_1_0(fh, {"descr": npf.dtype_to_descr(arr.dtype), "fortran_order": False,
                                         "shape": (2**40, arr.shape[1])})
        fh.write(arr.tobytes())


def _pair(entries: list[Path]) -> tuple[Path, Path]:
    """Two entries of the same shape and different features (e.g. the train and val split at one scale)."""
    shape = {p: json.loads(p.with_suffix(".json").read_text())["shape"] for p in entries}
    for a in entries:
        for b in entries:
            if a != b and shape[a] == shape[b]:
                return a, b
    raise RuntimeError("no two cache entries of the same shape")


def add_cases(out: Path, res: Path, case, ctx: dict[str, Any]) -> None:
    base = [a for a in ctx["knn"] if a != "--no-cache"]
    base[base.index("--scales") + 1:base.index("--scales") + 2] = ["0.25", "0.5"]
    i = base.index("--results-dir")
    del base[i:i + 2]
    cdir = out / "cache_cases"
    ds = _mini_dataset(cdir, "cache_ds")  # 4 train / 4 val real images: a recomputed entry costs little
    run = base + ["--dataset", str(ds), "--results-dir", str(res)]
    seed = cdir / "seed"
    seed_entries = _seed(base + ["--dataset", str(ds)], seed, cdir)
    if len(seed_entries) < 4:
        raise RuntimeError(f"the seed cache has {len(seed_entries)} entries, expected 4")

    # --- cache clear / ls: only satbench's entries -------------------------------------------------------------------
    thesis = cdir / "thesis"
    files = _thesis(thesis)
    case("cache-clear-folder-without-entries", ["cache", "clear", "--dir", thesis], "ok", present=files)
    case("cache-ls-folder-without-entries", ["cache", "ls", "--dir", thesis], "ok", present=files)
    mixed = cdir / "mixed"
    foreign = _thesis(mixed)
    entries = _copy(seed, mixed, seed_entries)
    (mixed / "ab").mkdir(exist_ok=True)
    (mixed / "ab" / "ab.txt").write_text("mine\n")
    foreign.append(mixed / "ab" / "ab.txt")
    gone = [q for p in entries for q in (p, p.with_suffix(".json"))]
    case("cache-clear-mixed-folder", ["cache", "clear", "--dir", mixed], "ok", absent=gone, present=foreign)
    blocker = cdir / "cache_is_a_file"
    blocker.write_text("not a folder\n")
    case("cache-ls-dir-is-a-file", ["cache", "ls", "--dir", blocker], "error", r"not a directory", present=[blocker])
    case("cache-clear-dir-is-a-file", ["cache", "clear", "--dir", blocker], "error", r"not a directory",
         present=[blocker])

    # --- deep JSON metadata, huge .npy header: damaged in run, ls and clear --------------------------------------------
    for cmd in ("run", "ls", "clear"):
        d = cdir / f"deep_json_{cmd}"
        entries = _copy(seed, d, seed_entries)
        victim, _ = _pair(entries)
        victim.with_suffix(".json").write_text("[" * 200_000 + "]" * 200_000)
        small = cdir / f"deep_json_small_{cmd}"
        entries2 = _copy(seed, small, seed_entries)
        victim2, _ = _pair(entries2)
        victim2.with_suffix(".json").write_text('{"key": ' + "[" * 5000 + "]" * 5000 + "}")
        for tag, folder, v in (("", d, victim), ("-under-size-cap", small, victim2)):
            if cmd == "run":
                case(f"cache-run-deep-json{tag}", run + ["--cache-dir", folder], "ok", present=[v.with_suffix(".json")])
            elif cmd == "ls":
                case(f"cache-ls-deep-json{tag}", ["cache", "ls", "--dir", folder], "ok")
            else:  # not recognisable as satbench's: both files stay
                case(f"cache-clear-deep-json{tag}", ["cache", "clear", "--dir", folder], "ok",
                     present=[v, v.with_suffix(".json")])
        d = cdir / f"huge_header_{cmd}"
        entries = _copy(seed, d, seed_entries)
        victim, _ = _pair(entries)
        _huge_header(victim)
        if cmd == "run":
            case("cache-run-huge-npy-header", run + ["--cache-dir", d], "ok", present=[victim])
        elif cmd == "ls":
            case("cache-ls-huge-npy-header", ["cache", "ls", "--dir", d], "ok")
        else:  # recognised by its metadata: a damaged entry of satbench's own, removed
            case("cache-clear-huge-npy-header", ["cache", "clear", "--dir", d], "ok",
                 absent=[victim, victim.with_suffix(".json")])

    # --- entries trusted by content, links never followed --------------------------------------------------------------
    d = cdir / "replaced_array"
    entries = _copy(seed, d, seed_entries)
    victim, other = _pair(entries)
    shutil.copy(other, victim)
    case("cache-run-array-replaced-by-valid-array", run + ["--cache-dir", d], "ok", present=[victim, other])
    d = cdir / "copied_entry"
    entries = _copy(seed, d, seed_entries)
    victim, other = _pair(entries)
    shutil.copy(other, victim)
    shutil.copy(other.with_suffix(".json"), victim.with_suffix(".json"))
    case("cache-run-entry-copied-under-another-name", run + ["--cache-dir", d], "ok", present=[victim])
    d = cdir / "symlinked_entry"
    entries = _copy(seed, d, seed_entries)
    victim, other = _pair(entries)
    victim.unlink()
    victim.symlink_to(other)
    case("cache-run-symlinked-array", run + ["--cache-dir", d], "ok", present=[other])
    outside = cdir / "outside_target"
    outside.mkdir()
    (outside / "precious.txt").write_text("not the cache's\n")
    for cmd in ("run", "clear"):
        d = cdir / f"symlinked_shard_{cmd}"
        entries = _copy(seed, d, seed_entries)
        victim, _ = _pair(entries)
        shard = victim.parent
        shutil.rmtree(shard)
        shard.symlink_to(outside, target_is_directory=True)
        never = [outside / p.name for p in (victim, victim.with_suffix(".json"))]
        if cmd == "run":
            case("cache-run-symlinked-shard-folder", run + ["--cache-dir", d], "ok", absent=never,
                 present=[outside / "precious.txt"])
        else:
            case("cache-clear-symlinked-shard-folder", ["cache", "clear", "--dir", d], "ok",
                 present=[outside / "precious.txt", shard])
    d = cdir / "foreign_file_at_entry_name"
    entries = _copy(seed, d, seed_entries)
    victim, _ = _pair(entries)
    victim.with_suffix(".json").unlink()
    victim.with_suffix(".json").mkdir()  # a folder where the metadata belongs: not writable over, not deleted
    (victim.with_suffix(".json") / "keep.txt").write_text("x\n")
    case("cache-run-folder-at-entry-name", run + ["--cache-dir", d], "ok",
         present=[victim.with_suffix(".json") / "keep.txt"])
    case("cache-clear-folder-at-entry-name", ["cache", "clear", "--dir", d], "ok",
         present=[victim.with_suffix(".json") / "keep.txt"])

    # --- an image changed in place under the same name (size and mtime kept; ctime / content differ) ---------------
    ds = _mini_dataset(cdir, "changed_in_place")
    ds_run = base + ["--dataset", str(ds), "--results-dir", str(res)]
    changed = cdir / "changed_cache"
    _seed(base + ["--dataset", str(ds)], changed, cdir)
    target = sorted((ds / "images" / "airplane").glob("*.jpg"))[-1]
    st = target.stat()
    old = target.read_bytes()
    donor = next(b for b in (p.read_bytes() for p in sorted((UCM / "images" / "forest").glob("*.jpg"), key=lambda p: p.stat().st_size))
                 if len(b) <= len(old))
    with open(target, "r+b") as fh:
        fh.write(donor + b"\0" * (len(old) - len(donor)))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    case("cache-run-image-changed-in-place", ds_run + ["--cache-dir", changed], "ok")
    case("cache-run-image-identity-unknown", ds_run + ["--cache-dir", changed, "--cache-identity", "md5"], "usage",
         r"--cache-identity: invalid choice")

    # --- an unusable cache folder: a warning, the run goes on without caching ----------------------------------------
    case("cache-run-cache-dir-under-a-file", run + ["--cache-dir", blocker / "features"], "ok", present=[blocker])
    case("cache-run-cache-dir-is-a-file", run + ["--cache-dir", blocker], "ok", present=[blocker])
