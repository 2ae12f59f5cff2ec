"""``satbench data prepare potsdam|vaihingen|loveda --src DIR``: mmseg's own converters, then a check.

The converters ship inside the mmseg wheel (``mmseg/.mim/tools/dataset_converters/``); they turn the
official zip downloads into ``img_dir/{train,val}`` + ``ann_dir/{train,val}`` PNG tiles (Potsdam and
Vaihingen: 512 x 512 tiles with stride 256, labels 0 = ignore, 1..6 classes; LoveDA: the 1024 x 1024
tiles as they are). satbench runs them unchanged (after the mmcv-lite compatibility layer) and then
checks every image has its label, label values are in range, and reports the counts next to the
counts mmseg's documentation expects.
"""

from __future__ import annotations

import contextlib
import io
import runpy
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np

from satbench.runtime import mmcv_compat

mmcv_compat.install()

from satbench.errors import DataError  # noqa: E402
from satbench.data.segmentation import check_data_root, get_seg_dataset  # noqa: E402

def converter_script(kind: str) -> Path:
    """Path of mmseg's converter for ``kind`` inside the installed wheel."""
    import mmseg

    path = Path(mmseg.__file__).resolve().parent / ".mim" / "tools" / "dataset_converters" / get_seg_dataset(kind).converter
    if not path.is_file():
        raise DataError(f"mmseg's converter {path} is missing from this mmsegmentation installation")
    return path


def check_labels(root: Path, kind: str, limit: Optional[int] = None) -> dict[str, Any]:
    """Label values of (up to ``limit``) masks per split must lie in ``0..max_label`` (the catalog's)."""
    from PIL import Image

    max_label = get_seg_dataset(kind).max_label
    seen: set[int] = set()
    for split in ("train", "val"):
        files = sorted((root / "ann_dir" / split).glob("*.png"))[:limit]
        for f in files:
            arr = np.asarray(Image.open(f))
            if arr.ndim != 2:
                raise DataError(f"{f}: label image must be single-channel, got shape {arr.shape}")
            vals = np.unique(arr)
            if vals.max() > max_label:
                raise DataError(f"{f}: label value {int(vals.max())} out of range 0..{max_label} for {kind}")
            seen.update(int(v) for v in vals)
    return {"label_values": sorted(seen)}


def convert(kind: str, src: Path, out: Path, *, tmp_dir: Optional[Path] = None, quiet: bool = True,
            check_limit: Optional[int] = 200, **options: Any) -> dict[str, Any]:
    """Run mmseg's converter for ``kind`` from ``src`` (the official zips) into ``<out>/<kind>/``; check; report.

    ``options``: ``clip_size`` / ``stride_size`` (Potsdam, Vaihingen; mmseg defaults 512 / 256). The
    generic ``data prepare`` options ``mode`` and ``any_extension`` do not apply (the converter writes new
    tiles) and are ignored; ``splits`` is refused (the converters fix the official train/val areas).
    """
    if options.get("splits"):
        raise DataError(f"{kind}: --splits does not apply; mmseg's converter uses the official train/val tile lists")
    src, dst = Path(src), Path(out) / get_seg_dataset(kind).folder
    if not src.is_dir():
        raise DataError(f"--src {src}: no such folder (expected the official {kind} zip files in it)")
    required = get_seg_dataset(kind).required_files
    missing = [z for z in required if not (src / z).is_file()]
    if missing:
        raise DataError(f"{src}: missing {', '.join(missing)} (the official {kind} download; expected "
                        f"{', '.join(required)})")
    argv = [str(converter_script(kind)), str(src), "-o", str(dst)]
    if tmp_dir is not None:
        argv += ["--tmp_dir", str(tmp_dir)]
    for key in ("clip_size", "stride_size"):
        if options.get(key) is not None and kind != "loveda":
            argv += [f"--{key}", str(int(options[key]))]
    old_argv = sys.argv
    sink = io.StringIO()
    try:
        sys.argv = argv
        with contextlib.redirect_stdout(sink) if quiet else contextlib.nullcontext():
            runpy.run_path(argv[0], run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise DataError(f"mmseg's {kind} converter stopped (exit {exc.code}) on {src}") from None
    except (AssertionError, OSError, KeyError, ValueError, IndexError, __import__("zipfile").BadZipFile) as exc:
        raise DataError(f"mmseg's {kind} converter failed on {src}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    finally:
        sys.argv = old_argv
    counts = check_data_root(dst, kind)
    labels = check_labels(dst, kind, check_limit)
    expected = get_seg_dataset(kind).expected
    return {"dataset": kind, "src": str(src), "dst": str(dst), "converter": f"mmseg {argv[0].split('/.mim/')[-1]}",
            "counts": counts, "expected_counts": expected, "matches_expected": counts == expected, **labels}
