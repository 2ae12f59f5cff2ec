"""Image reading: unusual inputs are converted as documented, broken ones are clear errors naming the file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from satbench.data.images import read_rgb
from satbench.errors import DataError


@pytest.fixture
def real(ucm_mini):
    return Image.open(ucm_mini.samples("val")[0].path).convert("RGB")


def test_rgb_jpeg_unchanged(ucm_mini, real):
    assert np.array_equal(np.asarray(read_rgb(ucm_mini.samples("val")[0].path)), np.asarray(real))


@pytest.mark.parametrize("mode", ["P", "L", "RGBA", "CMYK", "LA"])
def test_modes_convert_to_rgb(tmp_path, real, mode):
    path = tmp_path / f"x_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
    real.convert(mode).save(path)
    out = read_rgb(path)
    assert out.mode == "RGB" and out.size == real.size


def test_rgba_drops_alpha(tmp_path, real):
    rgba = real.convert("RGBA")
    rgba.putalpha(0)
    rgba.save(tmp_path / "a.png")
    assert np.array_equal(np.asarray(read_rgb(tmp_path / "a.png")), np.asarray(real))


def test_16bit_grayscale_tiff_is_scaled(tmp_path):
    arr = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)
    Image.fromarray(arr).save(tmp_path / "g16.tif")
    out = np.asarray(read_rgb(tmp_path / "g16.tif"))
    assert out.shape == (64, 64, 3)
    assert out[..., 0][-1, -1] == round(arr[-1, -1] / 257)


def test_broken_files_are_clear_errors(tmp_path, ucm_mini):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty.jpg is not a readable image"):
        read_rgb(empty)
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(DataError, match="notes.png is not a readable image"):
        read_rgb(text)
    data = ucm_mini.samples("val")[0].path.read_bytes()
    trunc = tmp_path / "trunc.jpg"
    trunc.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataError, match="trunc.jpg cannot be decoded"):
        read_rgb(trunc)
    with pytest.raises(DataError, match="does not exist"):
        read_rgb(tmp_path / "missing.jpg")
