"""Preparers for the six scene datasets: raw download -> ``<out>/<name>/images/<class>/<file>`` + official splits.

Each raw layout is found by looking for the folder that holds the class folders the official split files name
(``2750/`` or ``EuroSAT_RGB/`` for EuroSAT, ``UCMerced_LandUse/Images/``, ``NWPU-RESISC45/``, ...), at any depth up to
:data:`MAX_DEPTH` below ``--src`` (so an extra top folder from unzipping is fine). Files are hard-linked when possible,
else copied. Every split entry is checked; the report counts missing files and names the first few.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Optional

from satbench.errors import DataError
from satbench.data.catalog import get_dataset_spec
from satbench.data.images import IMAGE_EXTENSIONS
from satbench.io.bounded import read_bytes_or_fail
from satbench.data.scene import MAX_SPLIT_BYTES, SPLITS_DIR, _read_split, split_file_present

MAX_DEPTH = 5

def _split_entries(split_dir: Path) -> dict[str, list[tuple[int, str]]]:
    out = {}
    for split in ("train", "val"):
        p = split_dir / f"{split}.txt"
        if not split_file_present(p):
            raise DataError(f"split folder {split_dir} has no {split}.txt")
        out[split] = _read_split(p).lines
    return out


def _rel(entry: str) -> tuple[str, str]:
    parts = [x for x in entry.replace("\\", "/").split("/") if x not in ("", ".")]
    if len(parts) != 2 or ".." in parts:
        raise DataError(f"split entry {entry!r} is not of the form ./<class>/<file>")
    return parts[0], parts[1]


def find_class_root(src: Path, classes: set[str], max_depth: int = MAX_DEPTH) -> Path:
    """The folder under ``src`` (breadth-first, up to ``max_depth``) whose sub-folders cover most of ``classes``."""
    best: tuple[int, Optional[Path]] = (0, None)
    frontier = [src]
    for _ in range(max_depth + 1):
        nxt = []
        for d in frontier:
            try:
                subs = [p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")]
            except OSError:
                continue
            hit = len(classes & {p.name for p in subs})
            if hit > best[0]:
                best = (hit, d)
            nxt.extend(subs)
        if best[0] == len(classes):
            break
        frontier = nxt
    if best[1] is None or best[0] < max(1, len(classes) // 2):
        raise DataError(f"no folder under {src} holds the expected class folders (e.g. {', '.join(sorted(classes)[:4])})")
    return best[1]


def _link(src: Path, dst: Path, mode: str) -> str:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return "exists"
    if mode in ("auto", "link"):
        try:
            os.link(src, dst)
            return "link"
        except OSError:
            if mode == "link":
                raise DataError(f"cannot hard-link {src} to {dst} (different filesystems?); use --mode copy") from None
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.copy2(src, tmp)
    os.replace(tmp, dst)
    return "copy"


def prepare_scene(name: str, src: str | os.PathLike, out: str | os.PathLike, *, splits: Optional[str | os.PathLike] = None,
                  mode: str = "auto", any_extension: bool = False) -> dict[str, Any]:
    """Prepare dataset ``name`` from the raw folder ``src`` into ``<out>/<name>/``; returns a report.

    ``splits``: a folder with ``train.txt``/``val.txt`` (default: the official ones shipped with satbench).
    ``any_extension``: accept a file whose stem matches but extension differs (e.g. ``.jpg`` re-encodings of ``.tif``
    originals) and write split files naming the file actually present (the record then says ``modulo-extension``).
    """
    info = get_dataset_spec(name, kind="scene")
    src = Path(src).expanduser()
    if not src.is_dir():
        hint = f": {info.raw_layout}" if info.raw_layout else ""
        raise DataError(f"--src {src} is not a folder (expected the raw download of {name}{hint})")
    split_dir = Path(splits) if splits else SPLITS_DIR / name
    entries = _split_entries(split_dir)
    classes = {_rel(e)[0] for lines in entries.values() for _, e in lines}
    class_root = find_class_root(src, classes)
    dst = Path(out).expanduser() / name
    images = dst / "images"
    report: dict[str, Any] = {"dataset": name, "src": str(src), "class_root": str(class_root), "out": str(dst),
                              "splits_from": str(split_dir), "linked": 0, "copied": 0, "existing": 0,
                              "renamed_extension": 0, "missing": {}, "missing_examples": {}}
    stem_index: dict[str, dict[str, str]] = {}
    new_lines: dict[str, list[str]] = {}
    for split, lines in entries.items():
        missing: list[str] = []
        new_lines[split] = []
        for _, entry in lines:
            cls, fname = _rel(entry)
            f = class_root / cls / fname
            if not f.is_file() and any_extension:
                if cls not in stem_index:
                    folder = class_root / cls
                    stem_index[cls] = {p.stem: p.name for p in folder.iterdir()
                                       if p.suffix.lower() in IMAGE_EXTENSIONS} if folder.is_dir() else {}
                alt = stem_index[cls].get(Path(fname).stem)
                if alt is not None:
                    f, fname = class_root / cls / alt, alt
                    report["renamed_extension"] += 1
            if not f.is_file():
                missing.append(entry)
                continue
            how = _link(f, images / cls / fname, mode)
            report[{"link": "linked", "copy": "copied", "exists": "existing"}[how]] += 1
            new_lines[split].append(f"./{cls}/{fname}")
        report["missing"][split] = len(missing)
        report["missing_examples"][split] = missing[:5]
        report[f"{split}_entries"] = len(lines)
    for split in ("train", "val"):
        if report["renamed_extension"]:
            text = "\n".join(new_lines[split]) + "\n"
        else:
            src = split_dir / f"{split}.txt"
            text = read_bytes_or_fail(src, MAX_SPLIT_BYTES, lead=f"split file {src}", error=DataError).decode()
        from satbench.io.atomic import atomic_write_bytes

        atomic_write_bytes(dst / f"{split}.txt", text.encode())
    report["classes"] = len(classes)
    report["expected_classes"] = info.num_classes
    report["ok"] = not any(report["missing"].values())
    return report
