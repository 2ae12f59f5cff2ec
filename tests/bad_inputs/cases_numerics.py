"""Bad-input corpus cases for the numerics trust items: weight dtypes (9), normalisations (11), decompression bombs and
sizes a model cannot take (13). Loaded by ``make_corpus._plugin_cases``; every file is made here from bundled images.

(19, several processes, needs torchrun's environment rather than an argv: tests/e2e/test_numerics_trust.py covers it.)
"""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
UCM = REPO / "satbench" / "data" / "bundled" / "ucm-mini"


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width x height`` px, followed by a few bytes of data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))
    return path


def _dataset_with(out: Path, name: str, make_bad) -> tuple[Path, Path]:
    """A copy of the bundled ucm-mini layout (2 classes) with one image replaced by ``make_bad(path)``."""
    d = out / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    lines: dict[str, list[str]] = {"train": [], "val": []}
    for cls in ("airplane", "forest"):
        (d / "images" / cls).mkdir(parents=True)
        for i, f in enumerate(sorted((UCM / "images" / cls).glob("*.jpg"))[:4]):
            shutil.copy(f, d / "images" / cls / f.name)
            lines["train" if i < 2 else "val"].append(f"./{cls}/{f.name}")
    for split, ls in lines.items():
        (d / f"{split}.txt").write_text("\n".join(ls) + "\n")
    victim = sorted((d / "images" / "forest").glob("*.jpg"))[-1]
    make_bad(victim)
    return d, victim


def _thin_png(path: Path) -> None:
    tmp = path.with_suffix(".png")
    Image.new("L", (1, 100_000), 0).save(tmp, optimize=True)  # a few hundred bytes
    tmp.replace(path)  # PNG content under the .jpg name: PIL goes by content


def add_cases(out: Path, res: Path, case, ctx: dict[str, Any]) -> None:
    import torch
    from safetensors.torch import save_file

    from satbench.models.backbones.satdino import SatDINOViT

    knn = ctx["knn"]
    ext = ["extract", "--model", "satdino-test-tiny", "--images", UCM / "val.txt", "--output", out / "num.npy",
           "--no-progress"]

    # --- 11. normalisations: finite, 3 values, mean in [0, 1], std in [0.001, 1] ------------------------------------
    for cid, spec, pattern in [
        ("inf-std", "mean=0,0,0;std=inf,inf,inf", r"std must be finite"),
        ("nan-std", "mean=0,0,0;std=nan,1,1", r"std must be finite"),
        ("nan-mean", "mean=nan,0.4,0.4;std=0.2,0.2,0.2", r"mean must be finite"),
        ("tiny-std", "mean=0.4,0.4,0.4;std=1e-30,0.2,0.2", r"std .* must lie in \[0\.001, 1\]"),
        ("zero-std", "mean=0.4,0.4,0.4;std=0,0.2,0.2", r"must lie in \[0\.001, 1\]"),
        ("0-255-stats", "mean=123.7,116.3,103.5;std=58.4,57.1,57.4", r"outside \[0, 1\].*divide them by 255"),
        ("two-values", "mean=0.4,0.4;std=0.2,0.2", r"3 values each"),
    ]:
        case(f"normalization-{cid}", knn + ["--dataset", "ucm-mini", "--normalization", spec], "error", pattern)
        case(f"normalization-{cid}-extract", ext + ["--weights", "random", "--size", "32", "--normalization", spec],
             "error", pattern)
    # a protocol whose per-dataset table holds an impossible std (validated where the protocol's table is read)
    proto = yaml.safe_load((REPO / "tasks" / "knn" / "satdino-knn-v1.yaml").read_text())
    proto["name"] = "bad-table-knn"
    proto["params"].update(normalization="table",
                           normalization_table={"uc_merced": {"mean": [0.48, 0.49, 0.45], "std": [0.0, 0.1, 0.1]}})
    (out / "bad-table-knn.yaml").write_text(yaml.safe_dump(proto))
    no_norm = [a for i, a in enumerate(knn) if a != "--normalization" and (i == 0 or knn[i - 1] != "--normalization")]
    case("normalization-protocol-table-zero-std", no_norm + ["--dataset", "ucm-mini", "--protocol", out / "bad-table-knn.yaml"],
         "error", r"bad-table-knn.*normalization_table\.uc_merced\.std must be > 0")

    # --- 9. weight dtypes: integer, bool, complex and float8 refused (key and dtype named); fp16 / bf16 load -------
    torch.manual_seed(0)
    sd = {k: v.contiguous() for k, v in SatDINOViT(patch_size=16, embed_dim=192, depth=2, num_heads=3).state_dict().items()}
    wd = out / "dtype_ckpt"
    wd.mkdir(exist_ok=True)
    for dtype in (torch.int8, torch.bool, torch.uint8):
        name = str(dtype).removeprefix("torch.")
        save_file({k: v.to(dtype) for k, v in sd.items()}, str(wd / f"all_{name}.safetensors"))
        case(f"checkpoint-dtype-{name}-safetensors", ext + ["--size", "32", "--weights", wd / f"all_{name}.safetensors"],
             "error", rf"\({name}\).*float32, float64, float16 or bfloat16")
    for dtype in (torch.complex64, torch.float8_e4m3fn):
        name = str(dtype).removeprefix("torch.")
        torch.save({"teacher": {**sd, "blocks.1.mlp.fc2.weight": sd["blocks.1.mlp.fc2.weight"].to(dtype)}},
                   wd / f"one_{name}.pth")
        case(f"checkpoint-dtype-{name}-pth", ext + ["--size", "32", "--weights", wd / f"one_{name}.pth"],
             "error", rf"blocks\.1\.mlp\.fc2\.weight \({name}\)")
    for dtype in (torch.float16, torch.bfloat16):
        name = str(dtype).removeprefix("torch.")
        save_file({k: v.to(dtype) for k, v in sd.items()}, str(wd / f"all_{name}.safetensors"))
        case(f"checkpoint-dtype-{name}-upcast", ext[:-3] + ["--output", out / f"num_{name}.npy", "--no-progress",
                                                            "--size", "32", "--weights", wd / f"all_{name}.safetensors"],
             "ok")

    # --- 13. decompression bombs refused before decoding; sizes the model cannot take refused before any decode -------
    d, victim = _dataset_with(out, "ds_thin_png_bomb", _thin_png)
    case("image-thin-png-bomb-knn", no_norm + ["--normalization", "imagenet", "--dataset", d, "--native-size", "256"],
         "error", rf"{victim.name} is 1 x 100000 px: its long side is more than 50 x")
    single = out / "single_thin_bomb"
    single.mkdir(exist_ok=True)
    _thin_png(single / "thin.jpg")
    case("image-thin-png-bomb-extract", ext[:2] + ["satdino-test-tiny", "--images", single, "--output", out / "bomb.npy",
                                                   "--no-progress", "--weights", "random", "--size", "32"],
         "error", r"thin\.jpg is 1 x 100000 px")
    d2, victim2 = _dataset_with(out, "ds_header_bomb", lambda p: _png_header_only(p, 20_000, 20_000))
    case("image-header-pixel-bomb-knn", no_norm + ["--normalization", "imagenet", "--dataset", d2, "--native-size", "256"],
         "error", rf"{victim2.name} .*(too large|more than satbench decodes)")
    for size, pattern in (("768", r"--size 768: .*624 px"), ("25600", r"--size 25600: .*cannot take it")):
        case(f"extract-size-{size}-beyond-model", ext + ["--weights", "random", "--size", size], "error", pattern)
    # kNN scales the model cannot take are refused before any image is decoded (the protocol's views are checked
    # against the backbone): --scales 3 on ucm-mini (256 px) asks for 768 px, beyond SatDINO's 624 px at patch 16
    # (--native-size is dropped too: given, it would override the catalog's 256 px)
    case("knn-scales-beyond-model", [a for a in knn if a not in ("--scales", "0.125", "--native-size", "64")]
         + ["--dataset", "ucm-mini", "--scales", "3"],
         "error", r"768 x 768 px")
    case("extract-size-25600-pos-interp-size",
         ext + ["--weights", "random", "--size", "25600", "--pos-interp", "size"], "error", r"160 patches of 16 px per side, 2560 px")
