"""Trust items 9, 11, 13 and 19: weight dtypes, normalisation validation, decompression bombs and impossible input
sizes refused before any decode, and no kNN / cached-linear / extract run under several processes.

Every class is tested at its shared mechanism (``load_state_dict_strict``, ``Normalization.__post_init__``,
``read_rgb``, the backbones' ``check_input_size``, ``require_single_process``) and through the CLI on real inputs.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import struct
import sys
import zlib
from pathlib import Path

import pytest
import torch
from PIL import Image, ImageFile
from safetensors.torch import save_file

from satbench.models.backbones import FAMILIES
from satbench.models.backbones.base import MAX_GRID_SIDE, check_input_size
from satbench.models.backbones.satdino import SatDINOViT
from satbench.cli.app import main
from satbench.data.images import MAX_ASPECT_RATIO, MAX_PIXELS, read_rgb
from satbench.errors import DataError, InputSizeError, ProtocolError, SatbenchError, WeightsError
from satbench.data.normalization import PRESETS, Normalization, NormalizationError, parse_normalization
from satbench.models.registry import get_card
from satbench.runtime.resources import bundled_data_dir
from satbench.models.weights import LoadedModel, load_model
from support.paths import REPO
from support.builders import tiny_satdino

CARDS = REPO / "tests" / "fixtures" / "cards"
UCM = bundled_data_dir() / "ucm-mini"
PY = sys.executable

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def test_cards(monkeypatch):
    monkeypatch.setenv("SATBENCH_MODEL_CARDS", str(CARDS))


def _err_lines(err: str) -> list[str]:
    return [ln for ln in err.strip().splitlines() if ln.strip() and "%|" not in ln]


def _cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse usage errors
        code = exc.code
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, _err_lines(err)


# --------------------------------------------------------------------------------------------------------------------
# 9. Weight dtypes: refused at the one strict loader for every family; fp16 / bf16 upcast and recorded
# --------------------------------------------------------------------------------------------------------------------
def _small(name: str):
    """A real card with reduced dims (the code path is the full model's)."""
    return dataclasses.replace(get_card(name), name=f"test-{name}", embed_dim=64, num_heads=4, depth=2, feature_dim=64,
                               params_expected=None, weights={})


def _family_model(family: str):
    torch.manual_seed(0)
    if family == "satdino":
        card = dataclasses.replace(get_card("satdino-vit_small-16"), name="test-satdino-d2", arch="vit_tiny",
                                   embed_dim=192, feature_dim=192, depth=2, num_heads=3, weights={}, options={"depth": 2})
    elif family == "satmae":
        card = _small("satmae-vit_large-16")
    elif family == "scalemae":
        card = _small("scalemae-vit_large-16")
    else:
        card = get_card("timm:test_vit")
    model = FAMILIES[card.family].build(card, **card.options)
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    return card, model, sd


FAMILY_NAMES = ("satdino", "satmae", "scalemae", "timm")
BAD_DTYPES = (torch.int8, torch.uint8, torch.int64, torch.bool, torch.complex64, torch.float8_e4m3fn, torch.float8_e5m2)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_non_float_dtypes_are_refused_naming_key_and_dtype(family, tmp_path):
    card, _, sd = _family_model(family)
    for dtype in BAD_DTYPES:
        bad = dict(sd)
        bad["norm.weight"] = sd["norm.weight"].to(dtype)
        path = tmp_path / f"{family}_{str(dtype).split('.')[-1]}.safetensors"
        save_file(bad, str(path))
        name = str(dtype).removeprefix("torch.")
        with pytest.raises(WeightsError, match=rf"norm\.weight \({name}\).*float32, float64, float16 or bfloat16"):
            load_model(card, str(path))
    # the same in a torch.save checkpoint of the family's own layout (int8 and complex: garbage-prone, never silent)
    wrap = {"satdino": lambda d: {"teacher": d}, "satmae": lambda d: {"model": d}, "scalemae": lambda d: {"model": d},
            "timm": lambda d: d}[family]
    for dtype in (torch.int8, torch.complex64):
        torch.save(wrap({**sd, "blocks.0.attn.qkv.weight": sd["blocks.0.attn.qkv.weight"].to(dtype)}), tmp_path / "c.pth")
        with pytest.raises(WeightsError, match=r"blocks\.0\.attn\.qkv\.weight \((int8|complex64)\)"):
            load_model(card, str(tmp_path / "c.pth"))


@pytest.mark.parametrize("family", FAMILY_NAMES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_float_dtypes_are_cast_and_the_cast_is_recorded(family, dtype, tmp_path):
    card, _, sd = _family_model(family)
    low = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    save_file(low, str(tmp_path / "low.safetensors"))
    save_file({k: v.float() for k, v in low.items()}, str(tmp_path / "f32.safetensors"))  # the same values in fp32
    a = load_model(card, str(tmp_path / "low.safetensors"))
    b = load_model(card, str(tmp_path / "f32.safetensors"))
    name = str(dtype).removeprefix("torch.")
    assert a.weights.dtype_casts == {f"{name}->float32": len(low)}
    assert a.weights.as_dict()["dtype_casts"] == {f"{name}->float32": len(low)}
    assert "dtype_casts" not in b.weights.as_dict()  # float32 checkpoints: the record is exactly as before
    for k, v in b.model.state_dict().items():
        assert torch.equal(a.model.state_dict()[k], v), k
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(a.model(x), b.model(x))


def test_linear_head_dtype_is_checked_too(tmp_path):
    card, _, sd = _family_model("satdino")
    head = {"linear.weight": torch.zeros(5, 192, dtype=torch.int8), "linear.bias": torch.zeros(5)}
    torch.save({"teacher": sd, "linear_head": head}, tmp_path / "h.pth")
    with pytest.raises(WeightsError, match=r"linear_head\.linear\.weight \(int8\)"):
        load_model(card, str(tmp_path / "h.pth"))
    torch.save({"teacher": sd, "linear_head": {k: torch.zeros_like(v, dtype=torch.float16) for k, v in head.items()}},
               tmp_path / "h16.pth")
    assert load_model(card, str(tmp_path / "h16.pth")).weights.dtype_casts == {"float16->float32": 2}


def test_fp16_weights_cast_is_in_the_extract_sidecar_and_knn_record(tmp_path, test_cards, capsys):
    torch.manual_seed(0)
    sd = SatDINOViT(patch_size=16, embed_dim=192, depth=2, num_heads=3).state_dict()
    st = tmp_path / "tiny_fp16.safetensors"
    save_file({k: v.half().contiguous() for k, v in sd.items()}, str(st))
    code, lines = _cli(["extract", "--model", "satdino-test-tiny", "--weights", st, "--images", UCM / "val.txt",
                        "--size", "32", "--output", tmp_path / "f.npy", "--no-progress"], capsys)
    assert code == 0, lines
    side = json.loads((tmp_path / "f.json").read_text())
    assert side["weights"]["dtype_casts"] == {"float16->float32": len(sd)}
    code, lines = _cli(["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", st, "--scales", "0.125",
                        "--k", "1", "--no-progress", "--no-cache", "--results-dir", tmp_path / "runs"], capsys)
    assert code == 0, lines
    (rec,) = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*.json")]
    assert rec["weights"]["dtype_casts"] == {"float16->float32": len(sd)}


# --------------------------------------------------------------------------------------------------------------------
# 11. Normalisation: validated wherever a Normalization is created
# --------------------------------------------------------------------------------------------------------------------
BAD_SPECS = {
    "mean=0,0,0;std=inf,inf,inf": "std must be finite",
    "mean=nan,0,0;std=1,1,1": "mean must be finite",
    "mean=0.4,0.4,0.4;std=nan,0.2,0.2": "std must be finite",
    "mean=0.4,0.4,0.4;std=1e-30,0.2,0.2": r"std .* must lie in \[0\.001, 1\]",
    "mean=0.4,0.4,0.4;std=0,0.2,0.2": r"must lie in \[0\.001, 1\]",
    "mean=0.4,0.4,0.4;std=-0.2,0.2,0.2": r"must lie in \[0\.001, 1\]",
    "mean=123.7,116.3,103.5;std=58.4,57.1,57.4": r"outside \[0, 1\].*divide them by 255",
    "mean=0.4,0.4;std=0.2,0.2,0.2": "3 values each",
    "mean=0.4,0.4,0.4,0.4;std=0.2,0.2,0.2": "3 values each",
    "mean=0.4,0.4,0.4": "3 values each",
    "mean=a,b,c;std=0.2,0.2,0.2": "cannot parse",
}


@pytest.mark.parametrize("spec", sorted(BAD_SPECS))
def test_parse_normalization_refuses(spec):
    with pytest.raises(SatbenchError, match=BAD_SPECS[spec]):
        parse_normalization(spec)


def test_every_normalization_is_validated_at_creation():
    for mean, std in [((0, 0, 0), (float("inf"),) * 3), ((0.5,) * 3, (0.0, 0.2, 0.2)), ((0.5,) * 3, (1e-30,) * 3),
                      ((0.5, 0.5), (0.2,) * 3), ((2.0, 0.5, 0.5), (0.2,) * 3), ((0.5,) * 3, (0.2, 0.2, True)),
                      ((0.5,) * 3, "abc")]:
        with pytest.raises(NormalizationError):
            Normalization("x", mean, std)  # type: ignore[arg-type]
    # valid ones are stored as float tuples; the shipped presets are unchanged (records and cache keys stay identical)
    n = Normalization("y", [0, 0.5, 1], [1, 0.25, 0.5])  # type: ignore[arg-type]
    assert n.mean == (0.0, 0.5, 1.0) and n.std == (1.0, 0.25, 0.5)
    assert PRESETS["imagenet"].as_dict() == {"name": "imagenet", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    from satbench.data.catalog import get_dataset_spec

    assert get_dataset_spec("eurosat").norm.as_dict() == {"name": "eurosat", "mean": [0.343, 0.379, 0.406],
                                                          "std": [0.168, 0.110, 0.091]}
    assert PRESETS["satmae-fmow"].mean == (0.4182, 0.4215, 0.3991)  # legacy preset kept for old records


def test_protocol_table_entries_are_validated(tmp_path):
    import yaml

    from satbench.eval.knn_protocols import protocol_normalization
    from satbench.config.protocols import load_protocol

    from satbench.data.catalog import get_dataset_spec

    class _DS:
        protocol_name = "eurosat"
        name = "eurosat"
        normalization = get_dataset_spec("eurosat").norm

    base = yaml.safe_load((REPO / "tasks" / "knn" / "scalemae-knn-v1.yaml").read_text())
    # the protocol's typed settings refuse each entry when the protocol is read, naming file and key
    for i, (entry, pattern) in enumerate([({"mean": [0.3, 0.3, 0.3], "std": [0.0, 0.1, 0.1]},
                                           r"bad-0\.yaml\): every value of normalization_table\.eurosat\.std must be > 0"),
                                          ({"mean": [0.3, 0.3], "std": [0.1, 0.1, 0.1]},
                                           r"normalization_table\.eurosat\.mean must be a list of 3 values"),
                                          ({"mean": [0.3, 0.3, 0.3]}, r"missing key normalization_table\.eurosat\.std"),
                                          ([0.3, 0.3, 0.3], r"normalization_table\.eurosat must be a mapping")]):
        data = dict(base, name=f"bad-{i}")
        data["params"] = dict(base["params"], normalization_table={"eurosat": entry})
        path = tmp_path / f"bad-{i}.yaml"
        path.write_text(yaml.safe_dump(data))
        with pytest.raises((NormalizationError, ProtocolError), match=pattern):
            protocol_normalization(load_protocol(str(path)), _DS())


def _constant_dataset(root: Path) -> Path:
    """The ucm-mini layout with every image replaced by one flat grey image (std 0)."""
    d = root / "flat"
    shutil.copytree(UCM, d)
    for p in (d / "images").rglob("*.jpg"):
        Image.new("RGB", (64, 64), (90, 90, 90)).save(p, quality=100)
    return d


def test_computed_statistics_are_validated(tmp_path, capsys):
    from satbench.data.scene import compute_normalization, open_scene_dataset

    d = _constant_dataset(tmp_path)
    ds = open_scene_dataset(str(d), normalization=PRESETS["imagenet"], native_size=64)
    # a flat image's std comes out as ~1.7e-14 (float rounding), which "std > 0" alone would have let through
    with pytest.raises(NormalizationError, match=r"computed:flat:train.*std \[.*\] must lie in \[0\.001, 1\]"):
        compute_normalization(ds, "train", progress=False)
    code, lines = _cli(["run", "--task", "knn", "--weights", "random", "--model", "satdino-vit_small-16", "--dataset", d,
                        "--native-size", "64", "--normalization", "compute", "--scales", "0.25", "--k", "1",
                        "--no-progress", "--no-cache", "--results-dir", tmp_path / "runs"], capsys)
    assert code != 0 and len(lines) == 1 and "'computed:flat:train': std [" in lines[0]
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*.json"))


def test_timm_cfg_statistics_are_validated():
    from satbench.models.backbones.timm_vit import _normalization_for

    assert _normalization_for("x", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)) == "imagenet"
    with pytest.raises(NormalizationError, match=r"timm:weird.*std"):
        _normalization_for("weird", (0.5, 0.5, 0.5), (0.0, 0.5, 0.5))


@pytest.mark.parametrize("spec", ["mean=0,0,0;std=inf,inf,inf", "mean=0.4,0.4,0.4;std=1e-30,1,1",
                                  "mean=0,0,0;std=nan,1,1"])
def test_cli_refuses_bad_normalization_before_any_work(spec, tmp_path, test_cards, capsys, monkeypatch):
    monkeypatch.setattr("satbench.data.images.read_rgb", _no_decode)
    monkeypatch.setattr("satbench.eval.extract.read_rgb", _no_decode)
    code, lines = _cli(["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random", "--scales", "0.125",
                        "--k", "1", "--no-progress", "--no-cache", "--results-dir", tmp_path / "runs",
                        "--normalization", spec], capsys)
    assert code != 0 and len(lines) == 1 and lines[0].startswith("satbench: error: --normalization")
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*.json"))


# --------------------------------------------------------------------------------------------------------------------
# 13. Decompression bombs refused before decoding; impossible sizes refused before any decode
# --------------------------------------------------------------------------------------------------------------------
def _no_decode(*a, **k):
    raise AssertionError("an image was decoded")


@pytest.fixture
def no_pixel_decode(monkeypatch):
    """Fail the test if PIL decodes any pixel data (ImageFile.load is where every format's decoder runs)."""
    monkeypatch.setattr(ImageFile.ImageFile, "load", _no_decode)


def _bomb(path: Path, size=(1, 100_000)) -> Path:
    Image.new("L", size, 0).save(path, optimize=True)
    return path


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width x height`` (8-bit grey) with a few bytes of data: what a bomb's header says."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_thin_png_bomb_is_refused_before_decoding(tmp_path, no_pixel_decode):
    for size in ((1, 100_000), (100_000, 1), (2, 2 * MAX_ASPECT_RATIO + 2)):
        p = _bomb(tmp_path / f"bomb_{size[0]}x{size[1]}.png", size)
        assert p.stat().st_size < 2000  # a few hundred bytes on disk
        with pytest.raises(DataError, match=rf"{p.name} is {size[0]} x {size[1]} px: its long side is more than 50 x"):
            read_rgb(p)


def test_pixel_cap_is_checked_from_the_header(tmp_path, no_pixel_decode, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # satbench's cap holds whatever PIL's global setting is
    p = _png_header_only(tmp_path / "huge.png", 14_000, 13_000)
    assert 14_000 * 13_000 > MAX_PIXELS
    with pytest.raises(DataError, match=r"huge\.png is 14000 x 13000 px \(182 Mpx\), more than satbench decodes"):
        read_rgb(p)


def test_caps_admit_real_shapes(tmp_path):
    for size in ((1, MAX_ASPECT_RATIO), (600, 600), (1024, 1024), (4000, 3000)):
        p = tmp_path / f"ok_{size[0]}x{size[1]}.png"
        Image.new("RGB", size, (1, 2, 3)).save(p)
        assert read_rgb(p).size == size
    assert 10_000 * 10_000 <= MAX_PIXELS  # the corpus's 10000 px image (converted, not refused)


def test_bomb_inside_a_dataset_is_one_line_and_no_record(tmp_path, test_cards, capsys):
    d = tmp_path / "ds"
    shutil.copytree(UCM, d)
    victim = next((d / "images").rglob("*.jpg"))
    _bomb(victim.with_suffix(".png"))
    victim.with_suffix(".png").replace(victim)  # a PNG under a .jpg name: PIL goes by content
    code, lines = _cli(["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random", "--dataset", d,
                        "--normalization", "imagenet", "--native-size", "256", "--scales", "0.125", "--k", "1",
                        "--no-progress", "--no-cache", "--results-dir", tmp_path / "runs", "--num-workers", "0"], capsys)
    assert code != 0 and len(lines) == 1 and victim.name in lines[0] and "long side" in lines[0]
    assert not list((tmp_path / "runs").glob("*.json"))


def _tiny_loaded(pos_interp: str = "official", patch: int = 16) -> LoadedModel:
    return tiny_satdino("test-tiny", 0, patch=patch, pos_interp=pos_interp)


def test_satdino_size_check_agrees_with_the_official_interpolation():
    """check_input_size raises exactly where the official pos-embed interpolation would (no decode needed to know)."""
    for patch, grids in ((16, range(1, 46)), (8, range(150, 162))):
        model = SatDINOViT(patch_size=patch, embed_dim=8, depth=1, num_heads=1)  # the pos_embed table's shape is what counts
        for g in grids:
            try:
                model.interpolate_pos_encoding(g * patch, g * patch)
                forward_ok = True
            except InputSizeError:
                forward_ok = False
            try:
                model.check_input_size(g * patch, g * patch)
                check_ok = True
            except InputSizeError:
                check_ok = False
            assert forward_ok == check_ok, (patch, g)
    tiny = lambda **kw: SatDINOViT(embed_dim=8, depth=1, num_heads=1, **kw)  # noqa: E731
    # the patch embedding floors: 639 px is 39 patches (accepted, as by the official code), 640 px is 40 (refused)
    tiny(patch_size=16).check_input_size(639, 639)
    tiny(patch_size=16).interpolate_pos_encoding(639, 639)
    with pytest.raises(InputSizeError, match="official pos-embed interpolation.*624 px"):
        tiny(patch_size=16).check_input_size(640, 200)
    assert tiny(patch_size=16).max_input_size() == 624 and tiny(patch_size=8).max_input_size() == 1248
    assert tiny(patch_size=16, pos_interp="size").max_input_size() == MAX_GRID_SIDE * 16
    # plain DINO (no register): the official formula never fails, so satbench's own bound applies
    assert tiny(patch_size=16, gsd_register=False).max_input_size() == MAX_GRID_SIDE * 16


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_every_family_bounds_its_input(family):
    card, model, _ = _family_model(family)
    p = card.patch_size
    check_input_size(model, 224, 224)
    with pytest.raises(InputSizeError, match="smaller than one"):
        check_input_size(model, p - 1, 224)
    with pytest.raises(InputSizeError, match="larger than|beyond"):
        check_input_size(model, 100 * 256, 100 * 256)  # --scales 100 on a 256-px dataset
    if family == "scalemae":
        with pytest.raises(InputSizeError, match="square patch grid"):
            check_input_size(model, 224, 160)
    assert model.max_input_size() <= MAX_GRID_SIDE * p


@pytest.mark.parametrize("scales,pos_interp,pattern", [
    ([3.0], "official", r"scale 3 of ucm-mini \(native 256 px\) asks for 768 x 768 px.*624 px"),
    ([1.0, 100.0], "size", r"scale 100 .* 25600 x 25600 px.*at most 160 patches of 16 px per side, 2560 px"),
    ([100.0], "official", r"scale 100 .* 25600 x 25600 px.*at most 39 patches of 16 px per side, 624 px"),
])
def test_scales_are_refused_when_the_views_are_built(scales, pos_interp, pattern, ucm_mini, monkeypatch):
    from satbench.eval.knn_protocols import build_scale_entries
    from satbench.config.protocols import load_protocol

    monkeypatch.setattr("satbench.data.images.read_rgb", _no_decode)
    monkeypatch.setattr("satbench.eval.extract.read_rgb", _no_decode)
    proto = load_protocol("satdino-knn-v1").with_overrides(scales=scales)
    with pytest.raises(InputSizeError, match=pattern):
        build_scale_entries(proto, ucm_mini, _tiny_loaded(pos_interp))
    # the family name alone (no model) still builds the views, unchecked, as before
    assert [e.size for e in build_scale_entries(proto, ucm_mini, "satdino")][-1] == int(round(scales[-1] * 256)) // 16 * 16


def test_extract_refuses_a_size_before_listing_or_decoding(tmp_path, test_cards, capsys, monkeypatch):
    monkeypatch.setattr("satbench.data.images.read_rgb", _no_decode)
    monkeypatch.setattr("satbench.eval.extract.read_rgb", _no_decode)
    for size, pattern in (("768", r"--size 768: satdino-test-tiny cannot take it: .*624 px"),
                          ("25600", r"--size 25600: .*(624 px|2560 px)")):
        code, lines = _cli(["extract", "--model", "satdino-test-tiny", "--weights", "random", "--images", UCM / "val.txt",
                            "--size", size, "--output", tmp_path / "o.npy", "--no-progress"], capsys)
        assert code != 0 and len(lines) == 1
        import re

        assert re.search(pattern, lines[0]), lines[0]
    assert not (tmp_path / "o.npy").exists()


def test_knn_cli_refuses_scales_before_any_decode(tmp_path, test_cards, capsys, monkeypatch):
    monkeypatch.setattr("satbench.data.images.read_rgb", _no_decode)
    monkeypatch.setattr("satbench.eval.extract.read_rgb", _no_decode)
    code, lines = _cli(["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random", "--scales", "3",
                        "--k", "1", "--no-progress", "--no-cache", "--num-workers", "0",
                        "--results-dir", tmp_path / "runs"], capsys)
    assert code != 0 and len(lines) == 1 and "768 x 768 px" in lines[0]


# --------------------------------------------------------------------------------------------------------------------
# 19. kNN / cached-linear / extract refuse to run as one of several processes
# --------------------------------------------------------------------------------------------------------------------
def test_helper_reads_torchrun_env(monkeypatch):
    from satbench.runtime.distributed import require_single_process

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    require_single_process("x")
    monkeypatch.setenv("WORLD_SIZE", "1")
    require_single_process("x")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(SatbenchError, match=r"x runs as one process .* rank 1 of 2"):
        require_single_process("x")
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(SatbenchError, match="WORLD_SIZE='two' is not a whole number"):
        require_single_process("x")


def test_a_task_that_does_not_shard_refuses_several_processes(monkeypatch, capsys, tmp_path):
    """kNN, cached-linear and extract shard their extraction under torchrun (tests/test_distributed.py); a task that does not
    declare ``distributed`` (e.g. a plug-in) refuses with one line on every rank instead of redoing the whole job."""
    from satbench.eval.task import TASKS, Task, list_tasks, register_task

    list_tasks()

    @register_task
    class OneProcessTask(Task):
        name = "one-process-test"
        default_protocol = "satdino-knn-v1"
        protocol_task = "knn"

    try:
        for rank in ("0", "1"):
            for k, v in {"WORLD_SIZE": "2", "RANK": rank, "LOCAL_RANK": rank}.items():
                monkeypatch.setenv(k, v)
            code, lines = _cli(["run", "--task", "one-process-test", "--weights", "random", "--results-dir",
                                tmp_path / "runs"], capsys)
            assert code != 0 and len(lines) == 1, lines
            assert lines[0].startswith("satbench: error: satbench run --task one-process-test runs as one process")
            assert f"rank {rank} of 2" in lines[0]
        assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*.json"))
    finally:
        TASKS.pop("one-process-test", None)
