"""A contact sheet of a corruption protocol on one image (``satbench corruptions preview``): one row per type, one
column for the clean image and one per severity, each tile labelled with its parameter, so a user can see that
severity 5 is hard and not absurd.

The image is a file a user names: it is read bounded (:func:`satbench.io.bounded.read_bytes_bounded`, at most
:data:`MAX_BYTES`) and decoded by :func:`satbench.data.images.decode_rgb` (decompression bombs refused from the header),
and refused above :data:`MAX_PIXELS` (12 x 5 corruptions at native size). Each tile is corrupted at native size, as a
run does, with the generator :func:`~satbench.data.corruptions.corruption_rng` seeded from the image file's sha256
(in place of a split's), index 0, the type, the severity and the seed: the same file gives the same sheet on every
machine. Tiles are then fitted into ``tile`` x ``tile`` px (aspect kept, bicubic; never enlarged) for display only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from satbench.data.corruptions import CorruptionSettings, corrupt, corruption_rng
from satbench.errors import DataError

#: Largest image file read (bytes).
MAX_BYTES = 64 << 20
#: Largest image previewed (pixels): 4096 x 4096; every tile is corrupted at native size.
MAX_PIXELS = 4096 * 4096
#: Sheet geometry (px): the row-label column, the header row, the caption under each tile, the gap between tiles.
LABEL_W, HEADER_H, CAPTION_H, GAP = 170, 30, 22, 6
BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class PreviewImage:
    """A decoded preview image and the sha256 of its file (the seed of its corruptions)."""

    pixels: np.ndarray
    sha256: str
    path: str


def read_preview_image(path: str | Path) -> PreviewImage:
    """The image file ``path`` as uint8 HxWx3, read bounded; one :class:`DataError` line when it is missing, not a
    regular file, too big (bytes or pixels) or not an image."""
    from satbench.data.images import decode_rgb
    from satbench.io.bounded import UntrustedFileError, human_bytes, read_bytes_bounded

    path = Path(path)
    try:
        data = read_bytes_bounded(path, MAX_BYTES)
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist") from None
    except UntrustedFileError as exc:
        raise DataError(f"image {path} {exc}") from None
    except OSError as exc:
        raise DataError(f"image {path} cannot be read ({exc.strerror or type(exc).__name__})") from None
    if not data:
        raise DataError(f"image {path} is empty (0 bytes), not an image")
    im = decode_rgb(data, path)
    if im.width * im.height > MAX_PIXELS:
        raise DataError(f"image {path} is {im.width} x {im.height} px, more than the {MAX_PIXELS:,} px a preview "
                        f"corrupts at native size (crop it first; file limit {human_bytes(MAX_BYTES)})")
    return PreviewImage(np.asarray(im, dtype=np.uint8).copy(), hashlib.sha256(data).hexdigest(), str(path))


def _fmt(v: float) -> str:
    return f"{v:g}"


def parameter_text(settings: CorruptionSettings, kind: str, severity: int) -> str:
    """A tile's caption: the parameter of ``kind`` at ``severity`` in the protocol's units (ASCII)."""
    p = getattr(settings, kind)[severity - 1]
    a, b = (p if isinstance(p, (tuple, list)) else (p, None))
    text = {
        "gaussian_noise": lambda: f"sigma {_fmt(a)}",
        "salt_and_pepper": lambda: f"amount {_fmt(a)}",
        "gaussian_blur": lambda: f"sigma {_fmt(a)} px",
        "motion_blur": lambda: f"radius {_fmt(a)}, sigma {_fmt(b)}",
        "brightness_contrast": lambda: f"+{_fmt(a)}, contrast x{_fmt(b)}",
        "clouds": lambda: f"cover {_fmt(a)}, opacity {_fmt(b)}",
        "haze": lambda: f"t {_fmt(a)}, A {_fmt(settings.haze_airlight)}",
        "data_gaps": lambda: f"{_fmt(a)} of rows",
        "jpeg": lambda: f"quality {int(a)}",
        "rotate": lambda: f"+/-{_fmt(a)} deg",
        "scale": lambda: f"zoom x{_fmt(a)}",
        "translate": lambda: f"shift {_fmt(a)} of side",
    }[kind]
    return f"s{severity}: {text()}"


def tile_size(height: int, width: int, tile: int) -> tuple[int, int]:
    """``(w, h)`` of an image of ``height`` x ``width`` fitted into ``tile`` x ``tile`` (aspect kept, never enlarged)."""
    f = min(1.0, tile / max(height, width))
    return max(1, int(round(width * f))), max(1, int(round(height * f)))


def sheet_size(rows: int, columns: int, tile: int) -> tuple[int, int]:
    """``(width, height)`` in px of a sheet of ``rows`` types and ``columns`` tiles per row (clean included)."""
    return LABEL_W + columns * (tile + GAP) + GAP, HEADER_H + rows * (tile + CAPTION_H + GAP) + GAP


def tile_origin(row: int, column: int, tile: int) -> tuple[int, int]:
    """``(x, y)`` of the top-left corner of tile ``column`` (0 = clean) of row ``row``'s tile box."""
    return LABEL_W + GAP + column * (tile + GAP), HEADER_H + row * (tile + CAPTION_H + GAP)


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def contact_sheet(image: PreviewImage, settings: CorruptionSettings, kinds: Sequence[str],
                  severities: Sequence[int], *, seed: int, tile: int = 256) -> Any:
    """The sheet as a PIL RGB image of :func:`sheet_size` ``(len(kinds), 1 + len(severities), tile)``: row ``i`` is
    ``kinds[i]``, column 0 the clean image, column ``j`` severity ``severities[j - 1]``; each tile centred in its
    ``tile`` x ``tile`` box at :func:`tile_origin`, its caption below it."""
    from PIL import Image, ImageDraw

    h, w = image.pixels.shape[:2]
    tw, th = tile_size(h, w, tile)
    width, height = sheet_size(len(kinds), 1 + len(severities), tile)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    head, small = _font(16), _font(12)
    for j, label in enumerate(["clean"] + [f"severity {s}" for s in severities]):
        x, _ = tile_origin(0, j, tile)
        draw.text((x + tile / 2, HEADER_H / 2), label, fill=(0, 0, 0), font=head, anchor="mm")

    def put(arr: np.ndarray, row: int, col: int, caption: str) -> None:
        im = Image.fromarray(arr)
        if im.size != (tw, th):
            im = im.resize((tw, th), Image.BICUBIC)
        x, y = tile_origin(row, col, tile)
        sheet.paste(im, (x + (tile - tw) // 2, y + (tile - th) // 2))
        draw.text((x + tile / 2, y + tile + CAPTION_H / 2), caption, fill=(40, 40, 40), font=small, anchor="mm")

    for i, kind in enumerate(kinds):
        _, y = tile_origin(i, 0, tile)
        draw.text((GAP, y + tile / 2), kind, fill=(0, 0, 0), font=head, anchor="lm")
        put(image.pixels, i, 0, f"{w} x {h} px")
        for j, sev in enumerate(severities, start=1):
            rng = corruption_rng(image.sha256, 0, kind, sev, seed)
            put(corrupt(image.pixels, kind, sev, rng, settings), i, j, parameter_text(settings, kind, sev))
    return sheet


def sheet_png(sheet: Any) -> bytes:
    """The sheet as PNG bytes."""
    import io

    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
