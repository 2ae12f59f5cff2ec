"""``data download``'s pipeline: verified archives -> safe unpack -> ``data prepare`` -> check -> publish.

Everything happens in a staging folder inside the data root (same filesystem, so ``data prepare`` hard-links
instead of copying); the prepared dataset is renamed to ``<root>/<name>`` only after it passed its check, so
an interrupted or failed run never leaves a half-made dataset under the final name. An existing dataset
folder is never overwritten: if it passes the check it is reported as present, otherwise the run stops.

Licences: a dataset that is not public domain has its licence printed before its first download; the
acceptance is recorded per dataset in ``$SATBENCH_HOME/licences.json`` (so it is printed once). Scripts
pass ``yes=True`` (CLI ``--yes``); without it a non-interactive run stops with a message instead of
downloading silently.
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional

from satbench.io.archives import extract_archive, inspect_archive
from satbench.io.download import (
    DownloadError, FetchResult, downloads_dir, expected_checksums, fetch, record_first_use_checksum
)
from satbench.errors import DataError, SatbenchError
from satbench.io.atomic import atomic_write_json
from satbench.io.bounded import read_json_bounded
from satbench.runtime.resources import satbench_home
from satbench.data.sources import DatasetSource, RemoteFile, get_source

PROVENANCE_FILE = ".satbench-source.json"


def licences_file() -> Path:
    """Where accepted dataset licences are recorded."""
    return satbench_home() / "licences.json"


def _accepted() -> dict[str, Any]:
    p = licences_file()
    if not os.path.lexists(p):
        return {}
    data = read_json_bounded(p, what="satbench's record of accepted dataset licences", limit=1 << 20, error=DataError)
    return data if isinstance(data, dict) else {}


def accept_licence(src: DatasetSource, *, yes: bool = False, interactive: bool = False,
                   log: Callable[[str], None] = print, ask: Callable[[str], str] = input) -> None:
    """Show ``src``'s licence before its first download and record the acceptance; raise if not accepted."""
    if src.public_domain:
        return
    rec = _accepted().get(src.name)
    if isinstance(rec, dict) and rec.get("licence") == src.licence:
        return
    log(f"{src.title} is distributed under: {src.licence}. Please cite: {src.citation}. Source: {src.homepage}")
    if not yes:
        if not interactive:
            raise DataError(f"{src.name}: accept its licence ({src.licence}) before the first download: rerun with "
                            f"--yes (the acceptance is recorded in {licences_file()})")
        answer = ask(f"Accept the licence of {src.title} and download it? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            raise DataError(f"{src.name}: licence not accepted; nothing was downloaded")
    data = _accepted()
    data[src.name] = {"licence": src.licence, "accepted": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                      "how": "--yes" if yes else "interactive"}
    atomic_write_json(licences_file(), data)


def _checksum_text(rf: RemoteFile) -> str:
    md5, sha, where = expected_checksums(rf)
    if where == "first-use":
        return "no checksum known (computed and recorded on first use)"
    parts = ([f"md5 {md5}"] if md5 else []) + ([f"sha256 {sha}"] if sha else [])
    return " / ".join(parts) + (" (recorded on first use)" if where == "recorded" else "")


def manual_paragraph(src: DatasetSource, folder: Path) -> str:
    """The one paragraph ``data download`` prints for a dataset without a pinned public source."""
    files = "; ".join(f"{rf.filename} ({_checksum_text(rf)})" for rf in src.files)
    if src.kind == "scene":
        later = (f"or unpack it anywhere and run `satbench data prepare {src.name} --src DIR --out ROOT` "
                 f"followed by `satbench data check {src.name} --data-root ROOT`")
    else:
        later = f"or run `satbench data prepare {src.name} --src DIR_WITH_THE_ZIPS --out ROOT` yourself"
    return (f"{src.title}: {src.manual}. Licence: {src.licence}. Cite: {src.citation}. Expected files: {files}. "
            f"Put them in {folder} and rerun `satbench data download {src.name} --root ROOT` (it verifies the files, "
            f"then prepares and checks the dataset), {later}.")


def check_prepared(src: DatasetSource, folder: Path) -> dict[str, Any]:
    """The dataset check: ``open_scene_dataset(...).check()`` or ``check_data_root`` for segmentation."""
    if src.kind == "segmentation":
        from satbench.data.segmentation import check_data_root

        return {"counts": check_data_root(folder, src.name)}
    from satbench.data.scene import open_scene_dataset

    return open_scene_dataset(str(folder)).check()


def install_dataset(name: str, root: str | os.PathLike, *, yes: bool = False, interactive: bool = False,
                    source: Optional[str] = None, entry: Optional[DatasetSource] = None,
                    files_dir: Optional[str | os.PathLike] = None, splits: Optional[str | os.PathLike] = None,
                    progress: bool = True, retries: int = 5, backoff: float = 1.0, timeout: float = 60.0,
                    log: Callable[[str], None] = print) -> dict[str, Any]:
    """Download (or find), verify, unpack, prepare and check dataset ``name`` into ``<root>/<name>``.

    ``entry`` overrides the source table (tests); ``source`` picks an alternative source; ``files_dir`` is
    where archives are looked for and plain downloads go (default ``$SATBENCH_HOME/downloads/<name>``).
    Returns a report whose ``status`` is ``installed``, ``present`` or ``manual`` (nothing done: the
    paragraph in ``report["manual"]`` says what to do). The download folder is locked for the call
    (:mod:`satbench.io.locking`): a second download of the same dataset into it fails at once naming the first.
    """
    from satbench.io.locking import output_lock

    src = entry or get_source(name)
    folder = Path(files_dir).expanduser() if files_dir else downloads_dir() / src.name
    with output_lock(folder, f"data download {src.name}"):
        return _install_locked(src, root, folder, yes=yes, interactive=interactive, source=source, splits=splits,
                               progress=progress, retries=retries, backoff=backoff, timeout=timeout, log=log)


def _install_locked(src: DatasetSource, root: str | os.PathLike, folder: Path, *, yes: bool, interactive: bool,
                    source: Optional[str], splits: Optional[str | os.PathLike], progress: bool, retries: int,
                    backoff: float, timeout: float, log: Callable[[str], None]) -> dict[str, Any]:
    """:func:`install_dataset` while its download folder is locked."""
    root = Path(root).expanduser()
    final = root / src.target
    report: dict[str, Any] = {"dataset": src.name, "root": str(final)}
    if final.exists() or final.is_symlink():
        try:
            report["check"] = check_prepared(src, final)
        except SatbenchError as exc:
            raise DataError(f"{final} already exists but does not pass the check ({exc}); satbench never overwrites "
                            f"a dataset folder: move it away and rerun") from None
        report["status"] = "present"
        return report
    files = src.files_for(source)
    missing_manual = [rf for rf in files if not rf.url and not (folder / rf.filename).is_file()]
    if missing_manual:
        report.update(status="manual", manual=manual_paragraph(src, folder))
        return report
    for stale in sorted(root.glob(f".{final.name}.staging-*")) if root.is_dir() else []:
        log(f"note: {stale} is left over from an interrupted run; remove it when no other download is running")
    if any(not (folder / rf.filename).is_file() for rf in files):
        accept_licence(src, yes=yes, interactive=interactive, log=log)
    t0 = time.perf_counter()
    fetched: list[FetchResult] = []
    for rf in files:
        r = fetch(rf, folder, progress=progress, retries=retries, backoff=backoff, timeout=timeout, log=log,
                  record_first_use=False)  # recorded below, once the archive has unpacked, prepared and checked
        log(f"{rf.filename}: {r.how}, {r.digests.size} bytes, md5 {r.digests.md5} ({r.checksum} checksum "
            f"{'matched' if r.checksum != 'first-use' else 'computed; recorded once the dataset is installed'})")
        fetched.append(r)
    t_fetch = time.perf_counter() - t0
    root.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging-", dir=root))
    try:
        t1 = time.perf_counter()
        raw = stage / "raw"
        raw.mkdir()
        for rf, r in zip(files, fetched):
            if src.kind == "scene":
                extract_archive(r.path, raw / Path(rf.filename).stem)
            else:  # mmseg's converter reads the zips itself: check them, then hand over links named as it expects
                inspect_archive(r.path)
                os.symlink(r.path.resolve(), raw / rf.filename)
        t_unpack = time.perf_counter() - t1
        from satbench.data.prepare import get_preparer  # the kind decides: scene preparers need no mmseg

        preparer = get_preparer(src.name)
        opts: dict[str, Any] = {"mode": "auto"}
        if splits is not None:
            opts["splits"] = str(splits)
        t2 = time.perf_counter()
        prep = preparer(raw, stage / "out", **opts)
        staged = stage / "out" / final.name
        missing = prep.get("missing") or {}
        if any(missing.values()):
            ex = [e for lst in prep.get("missing_examples", {}).values() for e in lst][:3]
            raise DataError(f"{src.name}: {sum(missing.values())} split entries have no file in the downloaded archive "
                            f"(first: {', '.join(ex)}); nothing was installed")
        check = check_prepared(src, staged)
        t_prepare = time.perf_counter() - t2
        provenance = {
            "dataset": src.name, "source": source or "default", "licence": src.licence, "citation": src.citation,
            "installed": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "files": [{"filename": rf.filename, "url": rf.url, "how": r.how, "revision": r.revision,
                       "md5": r.digests.md5, "sha256": r.digests.sha256, "size": r.digests.size,
                       "checksum": r.checksum} for rf, r in zip(files, fetched)],
        }
        atomic_write_json(staged / PROVENANCE_FILE, provenance)
        if final.exists() or final.is_symlink():
            raise DataError(f"{final} appeared while {src.name} was being prepared; not overwriting it")
        os.rename(staged, final)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    for rf, r in zip(files, fetched):  # only an archive that installed a checked dataset vouches for its checksum
        if r.checksum == "first-use":
            record_first_use_checksum(rf, r.digests, log=log)
    report.update(status="installed", files=provenance["files"], prepare=prep, check=check,
                  seconds={"fetch": round(t_fetch, 3), "unpack": round(t_unpack, 3), "prepare_check": round(t_prepare, 3)})
    return report


__all__ = ["DownloadError", "accept_licence", "install_dataset", "manual_paragraph", "check_prepared"]
