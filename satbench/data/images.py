"""Reading images as 8-bit RGB, whatever the file holds.

The official SatDINO code opens images with PIL *without* converting them; for the RGB JPEG/PNG/TIFF files of the six scene
datasets that is the same as converting. satbench converts explicitly so that unusual inputs work and are documented:

* palette (P), grayscale (L, LA, 1) and CMYK/YCbCr: converted with PIL's ``convert('RGB')``;
* RGBA / LA: the alpha channel is dropped (no compositing);
* 16-bit and 32-bit single-channel images (``I;16*``, ``I``, ``F``): scaled linearly from the image's own dtype range
  (16-bit: /257) to 8 bits, then replicated to 3 channels;
* 16-bit RGB TIFFs that PIL cannot decode raise :class:`DataError` naming the file.

Truncated, empty or non-image files raise :class:`DataError` naming the file.

Decompression bombs are refused *before* decoding, from the size in the file header (PIL reads it without decoding):

* more than :data:`MAX_PIXELS` pixels (178,956,970, PIL's own hard decompression-bomb limit, about 13,377 px square;
  satbench enforces it itself, whatever ``Image.MAX_IMAGE_PIXELS`` is set to), or
* a long side more than :data:`MAX_ASPECT_RATIO` (50) times the short side: a 372-byte 1 x 100,000 PNG has only 0.1 Mpx
  but the protocol's short-side resize turns it into a 73 x 7,300,000 image (2.9 GB at 64 px).

Both caps admit every real dataset satbench reads: the scene datasets are square (at most 600 px native), segmentation
tiles are square (1024 px for LoveDA; the Potsdam / Vaihingen sources are 6000 px), fMoW-RGB images are a few thousand
px on a side with ordinary aspect ratios. With both caps a decoded image is at most 537 MB (RGB) and, after a short-side
resize to S px, at most 50 x S x S pixels.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from satbench.errors import DataError

#: File suffixes satbench reads as images (dataset folders, extraction, pretraining sources, segmentation tiles).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` from the file header, without decoding the pixels."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                size = im.size
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise DataError(f"image {path} is not a readable image (empty, corrupt or not an image format)") from None
    check_image_size(size[0], size[1], path)
    return size


#: Largest decoded image accepted, in pixels (PIL's hard decompression-bomb limit, 2 x 89,478,485).
MAX_PIXELS = 178_956_970
#: Largest ratio of an image's long side to its short side.
MAX_ASPECT_RATIO = 50


def check_image_size(width: int, height: int, path: str | Path = "<image>") -> None:
    """Refuse a header size beyond :data:`MAX_PIXELS` or :data:`MAX_ASPECT_RATIO` (before anything is decoded)."""
    if width < 1 or height < 1:
        raise DataError(f"image {path} has an empty size {width} x {height} px")
    if width * height > MAX_PIXELS:
        raise DataError(f"image {path} is {width} x {height} px ({width * height / 1e6:.0f} Mpx), more than satbench decodes "
                        f"({MAX_PIXELS / 1e6:.0f} Mpx; a decompression bomb?)")
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise DataError(f"image {path} is {width} x {height} px: its long side is more than {MAX_ASPECT_RATIO} x its short "
                        f"side (a decompression bomb? resizing its short side to the protocol size would need "
                        f"{max(width, height) / min(width, height):.0f} x the pixels of a square image)")


def read_rgb(path: str | Path) -> Image.Image:
    """Open ``path`` and return a fully decoded 8-bit RGB PIL image (size checked before decoding)."""
    return _decode(Path(path), Path(path))


def decode_rgb(data: bytes, path: str | Path = "<image>") -> Image.Image:
    """:func:`read_rgb` of a file's bytes already read (e.g. by :func:`satbench.io.bounded.read_bytes_bounded`, for a
    file a user names); ``path`` is only named in errors."""
    import io

    return _decode(io.BytesIO(data), Path(path))


def _decode(source: Any, path: Path) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                check_image_size(im.width, im.height, path)
                im.load()
                return to_rgb(im, path)
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"image {path} is a directory, not an image file") from None
    except UnidentifiedImageError:
        raise DataError(f"image {path} is not a readable image (empty, corrupt or not an image format)") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"image {path} is too large to decode safely ({exc})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"image {path} cannot be decoded ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def to_rgb(im: Image.Image, path: str | Path = "<image>") -> Image.Image:
    """Convert a decoded PIL image to 8-bit RGB following the rules in the module docstring."""
    mode = im.mode
    if mode == "RGB":
        return im.copy() if im.readonly else im
    if mode.startswith("I;16") or mode in ("I", "F"):
        arr = np.asarray(im)
        if mode.startswith("I;16"):
            arr8 = (arr.astype(np.float64) / 257.0).round()
        elif mode == "I":
            lo, hi = (0, 65535) if arr.min() >= 0 and arr.max() <= 65535 else (arr.min(), arr.max())
            arr8 = (arr.astype(np.float64) - lo) / max(hi - lo, 1) * 255.0
        else:
            lo, hi = (0.0, 1.0) if arr.min() >= 0 and arr.max() <= 1 else (float(arr.min()), float(arr.max()))
            arr8 = (arr.astype(np.float64) - lo) / max(hi - lo, 1e-12) * 255.0
        arr8 = np.clip(arr8, 0, 255).astype(np.uint8)
        return Image.fromarray(np.stack([arr8] * 3, axis=-1), mode="RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA" if mode != "LA" else "LA")
        return im.convert("RGB")
    if mode in ("P", "L", "1", "CMYK", "YCbCr", "LAB", "HSV"):
        return im.convert("RGB")
    raise DataError(f"image {path} has pixel mode {mode!r}, which satbench cannot convert to 8-bit RGB")
