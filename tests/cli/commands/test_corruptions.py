"""``satbench corruptions list|preview`` (satbench/cli/commands/corruptions.py, satbench/data/corruption_preview.py,
satbench/config/yaml_comments.py) on a bundled UC Merced image: the sheet's pixel size and grid, each tile being the
clean image or exactly what the corruption function gives, determinism and the seed, bad images as one line with
nothing written, and the list's parameters and source comments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from satbench.cli.app import main
from satbench.data import corruption_preview as CP
from satbench.data.corruptions import TYPES, corrupt, corruption_rng, load_corruption_protocol

BUNDLED = Path(__file__).resolve().parents[3] / "satbench" / "data" / "bundled" / "ucm-mini" / "images"
IMAGE = BUNDLED / "airplane" / "airplane16.jpg"


def _tile(sheet: np.ndarray, row: int, col: int, tile: int, w: int, h: int) -> np.ndarray:
    x, y = CP.tile_origin(row, col, tile)
    x, y = x + (tile - w) // 2, y + (tile - h) // 2
    return sheet[y:y + h, x:x + w]


def test_preview_writes_the_full_grid_with_exact_tiles(tmp_path, capsys):
    assert main(["corruptions", "preview", str(IMAGE), "--out", str(tmp_path / "out")]) == 0
    (png,) = (tmp_path / "out").glob("*.png")
    assert png.name == "airplane16.reo-v2.sheet.png"  # the default protocol
    assert "12 types" in capsys.readouterr().err
    sheet = np.asarray(Image.open(png).convert("RGB"))
    assert (sheet.shape[1], sheet.shape[0]) == CP.sheet_size(12, 6, 256)
    image = CP.read_preview_image(IMAGE)
    assert image.pixels.shape == (256, 256, 3)
    _, settings = load_corruption_protocol("reo-v2")
    for i, kind in enumerate(TYPES):
        assert np.array_equal(_tile(sheet, i, 0, 256, 256, 256), image.pixels), kind
        for sev in (1, 5):
            want = corrupt(image.pixels, kind, sev, corruption_rng(image.sha256, 0, kind, sev, 0), settings)
            assert np.array_equal(_tile(sheet, i, sev, 256, 256, 256), want), (kind, sev)
    # the label column and the gaps are background, the tiles are not
    assert (sheet[CP.HEADER_H:, :5] == 255).all()
    assert not (_tile(sheet, 0, 5, 256, 256, 256) == 255).all()


def test_preview_subset_tile_size_seed_and_determinism(tmp_path):
    argv = ["corruptions", "preview", str(IMAGE), "--types", "jpeg", "gaussian_noise", "--severities", "1", "5",
            "--tile", "100"]
    assert main(argv + ["--out", str(tmp_path / "a")]) == 0
    assert main(argv + ["--out", str(tmp_path / "b")]) == 0
    assert main(argv + ["--out", str(tmp_path / "c"), "--seed", "1"]) == 0
    a, b, c = (next((tmp_path / d).glob("*.png")).read_bytes() for d in "abc")
    assert a == b and a != c  # the same file gives the same sheet; another seed other noise
    sheet = np.asarray(Image.open(next((tmp_path / "a").glob("*.png"))).convert("RGB"))
    assert (sheet.shape[1], sheet.shape[0]) == CP.sheet_size(2, 3, 100)
    image = CP.read_preview_image(IMAGE)
    _, settings = load_corruption_protocol("reo-v2")
    # protocol order (gaussian_noise first), fitted into 100 px for display after the native-size corruption
    noisy = corrupt(image.pixels, "gaussian_noise", 5, corruption_rng(image.sha256, 0, "gaussian_noise", 5, 0), settings)
    want = np.asarray(Image.fromarray(noisy).resize((100, 100), Image.BICUBIC))
    assert np.array_equal(_tile(sheet, 0, 2, 100, 100, 100), want)


def test_preview_tile_of_a_non_square_image(tmp_path):
    rect = tmp_path / "rect.png"
    Image.open(IMAGE).crop((0, 0, 256, 128)).save(rect)
    assert main(["corruptions", "preview", str(rect), "--types", "haze", "--severities", "3", "--tile", "64",
                 "--out", str(tmp_path / "o")]) == 0
    sheet = np.asarray(Image.open(tmp_path / "o" / "rect.reo-v2.sheet.png").convert("RGB"))
    assert (sheet.shape[1], sheet.shape[0]) == CP.sheet_size(1, 2, 64)
    assert CP.tile_size(128, 256, 64) == (64, 32)
    clean = np.asarray(Image.open(rect).convert("RGB").resize((64, 32), Image.BICUBIC))
    assert np.array_equal(_tile(sheet, 0, 0, 64, 64, 32), clean)


def _bad(tmp_path: Path, capsys, image: Path, pattern: str, extra: tuple[str, ...] = ()) -> None:
    out = tmp_path / "out"
    code = main(["corruptions", "preview", str(image), "--out", str(out), *extra])
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert len(err.splitlines()) == 1 and err.startswith("satbench: error:"), err
    assert pattern in err, err
    assert not list(out.glob("*.png")) if out.exists() else True


def test_bad_images_are_one_line_and_write_nothing(tmp_path, capsys, monkeypatch):
    _bad(tmp_path, capsys, tmp_path / "missing.jpg", "does not exist")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a JPEG\n")
    _bad(tmp_path, capsys, text, "not a readable image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    _bad(tmp_path, capsys, empty, "empty")
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    _bad(tmp_path, capsys, folder, "folder")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(IMAGE.read_bytes()[:2000])
    _bad(tmp_path, capsys, truncated, "cannot be decoded")
    monkeypatch.setattr(CP, "MAX_BYTES", 10_000)
    _bad(tmp_path, capsys, IMAGE, "larger than the 9.77 KiB")
    monkeypatch.setattr(CP, "MAX_BYTES", 64 << 20)
    monkeypatch.setattr(CP, "MAX_PIXELS", 200 * 200)
    _bad(tmp_path, capsys, IMAGE, "256 x 256 px, more than the 40,000 px")
    _bad(tmp_path, capsys, IMAGE, "unknown corruption type 'fog'", ("--types", "fog"))
    _bad(tmp_path, capsys, IMAGE, "severity must be an integer 1..5", ("--severities", "6"))


def test_list_shows_every_type_its_five_values_and_sources(capsys):
    assert main(["corruptions", "list"]) == 0
    out = capsys.readouterr().out
    proto, settings = load_corruption_protocol("reo-v2")
    assert f"reo-v2 (hash {proto.hash[:12]}" in out  # the default protocol
    lines = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    assert set(TYPES) <= set(lines)
    jpeg = [c.strip() for c in lines["jpeg"].split("|")[1:-1]]
    assert jpeg[:6] == ["jpeg", "25", "18", "15", "10", "7"]
    assert jpeg[6] == "imagecorruptions jpeg_compression: quality"
    assert "no published source" in lines["clouds"] and "0.6, 0.9" in lines["clouds"]
    assert "haze_airlight: 0.85" in out and "seed: 0" in out
    assert "0.2, 0.25" in lines["brightness_contrast"] and "no published source" in lines["brightness_contrast"]


def test_list_and_preview_of_reo_v1_by_name(tmp_path, capsys):
    """reo-v1 (the earlier default) is still listed and previewed by name, with its own hash and values."""
    assert main(["corruptions", "list", "--protocol", "reo-v1"]) == 0
    out = capsys.readouterr().out
    proto, settings = load_corruption_protocol("reo-v1")
    assert f"reo-v1 (hash {proto.hash[:12]}" in out
    bc = next(line for line in out.splitlines() if line.startswith("| brightness_contrast"))
    assert "0.5, 0.05" in bc and "0.2, 0.25" not in bc
    assert main(["corruptions", "preview", str(IMAGE), "--protocol", "reo-v1", "--types", "brightness_contrast",
                 "--severities", "5", "--tile", "256", "--out", str(tmp_path / "o")]) == 0
    sheet = np.asarray(Image.open(tmp_path / "o" / "airplane16.reo-v1.sheet.png").convert("RGB"))
    image = CP.read_preview_image(IMAGE)
    want = corrupt(image.pixels, "brightness_contrast", 5,
                   corruption_rng(image.sha256, 0, "brightness_contrast", 5, 0), settings)
    assert np.array_equal(_tile(sheet, 0, 1, 256, 256, 256), want)


def test_list_of_a_protocol_path_with_its_own_comments(tmp_path, capsys):
    src = (Path(load_corruption_protocol("reo-v1")[0].path)).read_text()
    mine = src.replace("name: reo-v1", "name: mine").replace("# imagecorruptions jpeg_compression: quality",
                                                             "# my own JPEG choice\n  # on two lines")
    path = tmp_path / "mine.yaml"
    path.write_text(mine)
    assert main(["corruptions", "list", "--protocol", str(path)]) == 0
    out = capsys.readouterr().out
    assert "corruption protocol mine" in out and "my own JPEG choice on two lines" in out


def test_key_comments_reads_only_the_section_level():
    from satbench.config.yaml_comments import key_comments

    text = ("# file comment\nname: x\nparams:\n  # about a\n  a: [1, 2]\n  b:\n    # nested, not read\n    c: 1\n\n"
            "  # separated\n\n  d: 3\n  # source of e\n  # continued\n  e: 4\nother:\n  # not params\n  f: 1\n")
    assert key_comments(text) == {"a": "about a", "e": "source of e continued"}
