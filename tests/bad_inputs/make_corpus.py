"""Generate satbench's bad-input corpus: files plus the CLI calls that must fail cleanly (or convert, where documented).

Usage: python tests/bad_inputs/make_corpus.py OUT_DIR   (writes OUT_DIR/manifest.json)

Each case is ``{"id", "argv", "expect": "error"|"ok", "pattern"}``: ``error`` means exit code != 0, exactly one stderr
line starting with ``satbench: error:`` that matches ``pattern``, no traceback and no new result record; ``ok`` means the
input is merely unusual and is converted as documented (``satbench/data/images.py``), exit 0.
Nothing here is a hand-placed binary: every file is made by this script from the bundled real images.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
CARDS = REPO / "tests" / "fixtures" / "cards"  # export SATBENCH_MODEL_CARDS=<this> before running the manifest
UCM = REPO / "satbench" / "data" / "bundled" / "ucm-mini"


def _mini_dataset(root: Path, name: str, n_per_class: int = 2) -> Path:
    """A small dataset folder in the official layout from real bundled images (2 classes)."""
    d = root / name
    lines = {"train": [], "val": []}
    for cls in ("airplane", "forest"):
        (d / "images" / cls).mkdir(parents=True, exist_ok=True)
        files = sorted((UCM / "images" / cls).glob("*.jpg"))[: 2 * n_per_class]
        for i, f in enumerate(files):
            shutil.copy(f, d / "images" / cls / f.name)
            lines["train" if i < n_per_class else "val"].append(f"./{cls}/{f.name}")
    for split, ls in lines.items():
        (d / f"{split}.txt").write_text("\n".join(ls) + "\n")
    return d


def _real_image() -> Image.Image:
    return Image.open(sorted((UCM / "images" / "airplane").glob("*.jpg"))[0]).convert("RGB")


def build(out: Path) -> list[dict[str, Any]]:
    import torch

    from satbench.backbones.satdino import SatDINOViT

    out.mkdir(parents=True, exist_ok=True)
    res = out / "results"
    cases: list[dict[str, Any]] = []
    # The tiny test card (tests/fixtures/cards, via $SATBENCH_MODEL_CARDS) keeps each run to about a second.
    knn = ["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random", "--scales", "0.125", "--k", "1", "--no-progress", "--no-cache",
           "--results-dir", str(res), "--normalization", "imagenet", "--native-size", "64"]

    def case(cid: str, argv: list[str], expect: str = "error", pattern: str = "") -> None:
        cases.append({"id": cid, "argv": [str(a) for a in argv], "expect": expect, "pattern": pattern})

    # --- images: broken ones are errors inside a dataset run, unusual ones convert in extract -------------------------
    img = _real_image()
    broken = {
        "zero-byte": b"",
        "non-image": b"GIF89a? no, just text pretending to be an image\n",
        "truncated": (sorted((UCM / "images" / "airplane").glob("*.jpg"))[0].read_bytes())[:3000],
    }
    for kind, data in broken.items():
        d = _mini_dataset(out, f"ds_img_{kind}")
        target = next((d / "images" / "forest").glob("*.jpg"))
        target.write_bytes(data)
        case(f"image-{kind}", knn + ["--dataset", d], "error", rf"{target.name}")
    unusual = out / "unusual"
    unusual.mkdir(exist_ok=True)
    img.convert("P").save(unusual / "palette.png")
    img.convert("L").save(unusual / "gray.png")
    img.convert("RGBA").save(unusual / "rgba.png")
    img.convert("CMYK").save(unusual / "cmyk.jpg")
    Image.fromarray((np.asarray(img.convert("L"), dtype=np.uint16) * 257)).save(unusual / "gray16.tif")
    img.resize((1, 1)).save(unusual / "one_px.png")
    Image.new("RGB", (10000, 10000), (90, 120, 80)).save(unusual / "huge_10000px.png", optimize=False)
    for f in sorted(unusual.iterdir()):
        single = out / f"single_{f.stem}"
        single.mkdir(exist_ok=True)
        shutil.copy(f, single / f.name)
        case(f"image-unusual-{f.stem}", ["extract", "--model", "satdino-test-tiny", "--weights", "random", "--images", single, "--size", "32",
                                          "--output", out / f"feat_{f.stem}.npy", "--no-progress"], "ok")

    # --- split files -------------------------------------------------------------------------------------------------
    def split_case(cid: str, mutate, pattern: str, expect: str = "error") -> None:
        d = _mini_dataset(out, f"ds_split_{cid}")
        text = (d / "val.txt").read_text()
        (d / "val.txt").write_bytes(mutate(text).encode())
        case(f"split-{cid}", knn + ["--dataset", d], expect, pattern)

    split_case("missing-file", lambda t: t + "./forest/forest_does_not_exist.jpg\n", r"val\.txt.*no file|1 of \d+ entries")
    split_case("absolute-path", lambda t: t + "/etc/passwd/x.jpg\n", r"absolute path")
    split_case("dotdot-escape", lambda t: t + "./../../secret/x.jpg\n", r"outside the dataset")
    split_case("unknown-class", lambda t: t + "./volcano/volcano00.jpg\n", r"class 'volcano'")
    split_case("blank-lines", lambda t: "\n\n" + t.replace("\n", "\n\n") + "\n   \n", "", "ok")
    split_case("windows-crlf", lambda t: t.replace("\n", "\r\n"), "", "ok")
    split_case("empty-split", lambda t: "\n", r"no entries")
    d = _mini_dataset(out / "ds_empty_class", "uc_merced")
    (d / "images" / "zzz_empty").mkdir()
    case("dataset-empty-class", ["data", "check", d], "error", r"zzz_empty")
    d = _mini_dataset(out, "ds_no_val")
    (d / "val.txt").unlink()
    case("dataset-no-val-split", knn + ["--dataset", d], "error", r"no val\.txt")

    # --- checkpoints --------------------------------------------------------------------------------------------------
    torch.manual_seed(0)
    tiny = dict(embed_dim=192, depth=2, num_heads=3)  # the satdino-test-tiny card's architecture
    sd = SatDINOViT(patch_size=16, **tiny).state_dict()
    ck = out / "ckpt"
    ck.mkdir(exist_ok=True)
    (ck / "garbage.pth").write_bytes(np.random.default_rng(0).bytes(4096))
    torch.save({"teacher": sd}, ck / "good.pth")
    data = (ck / "good.pth").read_bytes()
    (ck / "truncated.pth").write_bytes(data[: len(data) // 3])
    (ck / "good.pth").unlink()
    torch.save({"teacher": SatDINOViT(patch_size=8, **tiny).state_dict()}, ck / "other_patch.pth")
    torch.save({"teacher": {k: v for k, v in sd.items() if k != "norm.bias"}}, ck / "missing_key.pth")
    torch.save({"teacher": dict(sd, extra_token=torch.zeros(1))}, ck / "extra_key.pth")
    torch.save({"teacher": dict(sd, **{"norm.weight": torch.full((192,), float("nan"))})}, ck / "nan.pth")
    torch.save({"teacher": sd, "payload": Path("/tmp")}, ck / "unsafe_type.pth")
    (ck / "empty.pth").write_bytes(b"")
    ext = ["extract", "--model", "satdino-test-tiny", "--images", UCM / "val.txt", "--size", "16", "--output", out / "o.npy", "--no-progress"]
    for name, pattern in [("garbage", "not a readable PyTorch checkpoint"), ("truncated", "not a readable PyTorch checkpoint"),
                          ("other_patch", "wrong architecture or patch size"), ("missing_key", r"missing keys: norm\.bias"),
                          ("extra_key", "unexpected keys: extra_token"), ("nan", "non-finite"),
                          ("unsafe_type", r"PosixPath.*--trust-checkpoint"), ("empty", "empty")]:
        case(f"checkpoint-{name}", ext + ["--weights", ck / f"{name}.pth"], "error", pattern)
    case("checkpoint-directory-without-weights", ext + ["--weights", unusual], "error", r"no weight file")

    # --- names --------------------------------------------------------------------------------------------------------
    case("unknown-model", knn + ["--model", "satdino-vit_huge-14", "--dataset", "ucm-mini"], "error", r"unknown model")
    case("unknown-task", ["run", "--task", "knnn", "--weights", "random"], "error", r"unknown task 'knnn'")
    case("unknown-dataset", knn + ["--dataset", "eurosatt"], "error", r"eurosatt")
    case("unknown-protocol", knn + ["--dataset", "ucm-mini", "--protocol", "satdino-knn-v9"], "error", r"unknown protocol")
    case("unknown-normalization", ["extract", "--weights", "random", "--images", UCM / "val.txt", "--output", out / "o.npy",
                                   "--normalization", "imagenett"], "error", r"unknown normalization")

    # --- malformed values (argparse: exit 2, one usage error line is acceptable; we require no traceback) ----------------
    for cid, extra in [("scales-text", ["--scales", "abc"]), ("scales-negative", ["--scales", "-0.5"]),
                       ("k-zero", ["--k", "0"]), ("k-text", ["--k", "x"]), ("size-zero", None)]:
        if extra is None:
            case(cid, ["extract", "--weights", "random", "--images", UCM / "val.txt", "--output", out / "o.npy", "--size", "0"],
                 "usage", r"positive integer")
        else:
            case(cid, ["run", "--task", "knn", "--weights", "random", "--dataset", "ucm-mini"] + extra, "usage", r"expected a positive|invalid")

    # --- results folder -----------------------------------------------------------------------------------------------
    blocker = out / "results_is_a_file"
    blocker.write_text("not a folder")
    case("results-dir-is-a-file", [a if a != str(res) else str(blocker) for a in [str(x) for x in knn]] + ["--dataset", "ucm-mini"],
         "error", r"not a directory|cannot write")
    return cases


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bad_input_corpus")
    cases = build(out)
    (out / "manifest.json").write_text(json.dumps(cases, indent=1))
    print(f"{len(cases)} cases written to {out}/manifest.json")


if __name__ == "__main__":
    main()
