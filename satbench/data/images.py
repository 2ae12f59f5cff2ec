"""Reading images as 8-bit RGB, whatever the file holds.

The official SatDINO code opens images with PIL *without* converting them; for the RGB JPEG/PNG/TIFF files of the six scene
datasets that is the same as converting. satbench converts explicitly so that unusual inputs work and are documented:

* palette (P), grayscale (L, LA, 1) and CMYK/YCbCr: converted with PIL's ``convert('RGB')``;
* RGBA / LA: the alpha channel is dropped (no compositing);
* 16-bit and 32-bit single-channel images (``I;16*``, ``I``, ``F``): scaled linearly from the image's own dtype range
  (16-bit: /257) to 8 bits, then replicated to 3 channels;
* 16-bit RGB TIFFs that PIL cannot decode raise :class:`DataError` naming the file.

Truncated, empty or non-image files raise :class:`DataError` naming the file. Images above PIL's decompression-bomb limit
(about 179 Mpx) are refused the same way.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

#: File suffixes satbench reads as images (dataset folders, extraction, pretraining sources, segmentation tiles).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp")


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` from the file header, without decoding the pixels."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return im.size
    except FileNotFoundError:
        raise DataError(f"image {path} does not exist") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise DataError(f"image {path} is not a readable image (empty, corrupt or not an image format)") from None


def read_rgb(path: str | Path) -> Image.Image:
    """Open ``path`` and return a fully decoded 8-bit RGB PIL image."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
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
