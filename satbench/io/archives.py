"""Unpacking downloaded archives (zip, tar, tar.gz/bz2/xz) without trusting them.

Every member is inspected *before* anything is written: absolute paths, ``..`` components, drive letters,
links that point outside the archive, device files and FIFOs are refused, and so are archives whose total
uncompressed size or member count exceeds a bound (zip bombs). Extraction goes into a temporary folder
next to the destination, which is renamed into place only when every member has been written; a failure
removes the temporary folder, so a half-unpacked archive never appears under the final name, and an
existing destination is never overwritten.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from satbench.errors import DataError

#: Default bounds: larger than every benchmark archive satbench knows (LoveDA Train.zip is ~4 GB, 2.5k files).
MAX_TOTAL_BYTES = 64 << 30
MAX_MEMBERS = 1_000_000
#: A member that expands more than this factor (and beyond 16 MiB) is treated as a decompression bomb.
MAX_RATIO = 1000


@dataclass(frozen=True)
class ArchiveInfo:
    """What :func:`inspect_archive` found: the format, the member count and the uncompressed size."""

    path: Path
    kind: str  # "zip" or "tar"
    members: int
    total_bytes: int


def _safe_rel(name: str, archive: Path) -> PurePosixPath:
    """The member name as a relative path that stays inside the destination, or a DataError."""
    raw = name.replace("\\", "/")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise DataError(f"{archive}: refused to unpack: member {name!r} has an absolute path")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DataError(f"{archive}: refused to unpack: member {name!r} points outside the archive ('..')")
    if any("\x00" in p for p in parts):
        raise DataError(f"{archive}: refused to unpack: member {name!r} has a NUL byte in its name")
    return PurePosixPath(*parts) if parts else PurePosixPath(".")


def _link_inside(member: PurePosixPath, target: str) -> bool:
    """True when a link at ``member`` pointing to ``target`` stays inside the archive root."""
    t = target.replace("\\", "/")
    if t.startswith("/") or (len(t) > 1 and t[1] == ":"):
        return False
    depth = len(member.parts) - 1  # folders above the link
    for part in t.split("/"):
        if part in ("", "."):
            continue
        depth = depth - 1 if part == ".." else depth + 1
        if depth < 0:
            return False
    return True


def archive_kind(path: Path) -> str:
    """``zip`` or ``tar`` from the file's content (not its name); a DataError for anything else."""
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError:
        pass
    raise DataError(f"{path}: not a zip or tar archive")


def inspect_archive(path: str | os.PathLike, *, max_total_bytes: int = MAX_TOTAL_BYTES,
                    max_members: int = MAX_MEMBERS) -> ArchiveInfo:
    """Check every member of the archive at ``path`` without writing anything; raise DataError on the first unsafe one."""
    path = Path(path)
    kind = archive_kind(path)
    total = count = 0
    if kind == "zip":
        try:
            with zipfile.ZipFile(path) as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataError(f"{path}: not a readable zip archive ({exc})") from None
        for info in infos:
            count += 1
            rel = _safe_rel(info.filename, path)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise DataError(f"{path}: refused to unpack: member {info.filename!r} is a symbolic link")
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):  # no type bits: DOS-made zip
                raise DataError(f"{path}: refused to unpack: member {info.filename!r} is not a regular file or folder")
            if info.flag_bits & 0x1:
                raise DataError(f"{path}: member {info.filename!r} is encrypted; satbench unpacks plain archives only")
            if info.file_size > (16 << 20) and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise DataError(f"{path}: refused to unpack: member {rel} expands {info.file_size} bytes from "
                                f"{info.compress_size} (a decompression bomb?)")
            total += info.file_size
            _check_bounds(path, count, total, max_members, max_total_bytes)
    else:
        try:
            with tarfile.open(path, "r:*") as tf:
                members = tf.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(f"{path}: not a readable tar archive ({exc})") from None
        for m in members:
            count += 1
            rel = _safe_rel(m.name, path)
            if m.issym() or m.islnk():
                base = rel if m.issym() else PurePosixPath("x")  # hard-link targets are relative to the root
                if not _link_inside(base, m.linkname):
                    raise DataError(f"{path}: refused to unpack: member {m.name!r} links outside the archive "
                                    f"({m.linkname!r})")
            elif not (m.isreg() or m.isdir()):
                raise DataError(f"{path}: refused to unpack: member {m.name!r} is a device, FIFO or other special file")
            total += max(m.size, 0)
            _check_bounds(path, count, total, max_members, max_total_bytes)
    return ArchiveInfo(path, kind, count, total)


def _check_bounds(path: Path, count: int, total: int, max_members: int, max_total: int) -> None:
    if count > max_members:
        raise DataError(f"{path}: refused to unpack: more than {max_members} members")
    if total > max_total:
        raise DataError(f"{path}: refused to unpack: more than {max_total} bytes uncompressed")


def extract_archive(path: str | os.PathLike, dest: str | os.PathLike, *, max_total_bytes: int = MAX_TOTAL_BYTES,
                    max_members: int = MAX_MEMBERS) -> ArchiveInfo:
    """Unpack ``path`` into the new folder ``dest`` (which must not exist): inspect, extract to a sibling
    temporary folder, rename into place. Nothing is left under ``dest`` if any step fails."""
    path, dest = Path(path), Path(dest)
    if dest.exists() or dest.is_symlink():
        raise DataError(f"{dest} already exists; satbench does not unpack over an existing folder")
    info = inspect_archive(path, max_total_bytes=max_total_bytes, max_members=max_members)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    try:
        if info.kind == "zip":
            _extract_zip(path, tmp, max_total_bytes)
        else:
            _extract_tar(path, tmp)
        if dest.exists():
            raise DataError(f"{dest} appeared while unpacking {path}; not overwriting it")
        os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _extract_zip(path: Path, out: Path, max_total: int) -> None:
    written = 0
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                rel = _safe_rel(info.filename, path)
                target = out.joinpath(*rel.parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "xb") as dst:
                    left = info.file_size
                    while block := src.read(1 << 20):
                        left -= len(block)
                        written += len(block)
                        if left < 0 or written > max_total:
                            raise DataError(f"{path}: member {rel} holds more data than its header declares")
                        dst.write(block)
    except FileExistsError as exc:
        raise DataError(f"{path}: member {exc.filename} appears twice in the archive") from None
    except (zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError) as exc:
        raise DataError(f"{path}: corrupt or unsupported zip archive ({exc})") from None
    except OSError as exc:
        raise DataError(f"cannot unpack {path}: {exc.strerror or exc}") from None


def _extract_tar(path: Path, out: Path) -> None:
    try:
        with tarfile.open(path, "r:*") as tf:
            tf.extractall(out, filter="data")  # the stdlib's own guard, on top of inspect_archive
    except tarfile.FilterError as exc:
        raise DataError(f"{path}: refused to unpack: {exc}") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise DataError(f"{path}: corrupt tar archive or unpack failure ({exc})") from None
