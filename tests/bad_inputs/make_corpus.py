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
from support.builders import scene_folder

REPO = Path(__file__).resolve().parents[2]
CARDS = REPO / "tests" / "fixtures" / "cards"  # export SATBENCH_MODEL_CARDS=<this> before running the manifest
UCM = REPO / "satbench" / "data" / "bundled" / "ucm-mini"


def _mini_dataset(root: Path, name: str, n_per_class: int = 2) -> Path:
    """A small dataset folder in the official layout from real bundled images (2 classes)."""
    return scene_folder(root, name, ("airplane", "forest"), train=n_per_class, val=n_per_class)


def _real_image() -> Image.Image:
    return Image.open(sorted((UCM / "images" / "airplane").glob("*.jpg"))[0]).convert("RGB")


def build(out: Path) -> list[dict[str, Any]]:
    import torch

    from satbench.models.backbones.satdino import SatDINOViT

    out.mkdir(parents=True, exist_ok=True)
    res = out / "results"
    cases: list[dict[str, Any]] = []
    # The tiny test card (tests/fixtures/cards, via $SATBENCH_MODEL_CARDS) keeps each run to about a second.
    knn = ["run", "--task", "knn", "--model", "satdino-test-tiny", "--weights", "random", "--scales", "0.125", "--k", "1", "--no-progress", "--no-cache",
           "--results-dir", str(res), "--normalization", "imagenet", "--native-size", "64"]

    def case(cid: str, argv: list[str], expect: str = "error", pattern: str = "", absent=(), present=(),
             env=None) -> None:
        if any(c["id"] == cid for c in cases):
            raise ValueError(f"duplicate corpus case id {cid!r}")
        cases.append({"id": cid, "argv": [str(a) for a in argv], "expect": expect, "pattern": pattern,
                      "absent": [str(p) for p in absent], "present": [str(p) for p in present],
                      "env": {k: str(v) for k, v in (env or {}).items()}})

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
    _other_entry_points(out, res, case, ck)
    _plugin_cases(out, res, case, {"knn": knn, "ck": ck, "unusual": unusual})
    return cases


def _plugin_cases(out: Path, res: Path, case, ctx: dict[str, Any]) -> None:
    """Cases from ``tests/bad_inputs/cases_*.py`` modules: each defines ``add_cases(out, res, case, ctx)``.

    ``case(id, argv, expect, pattern, absent=(), present=(), env=None)``: ``absent`` lists paths that must not exist
    after the case (e.g. a marker file a malicious input tries to create), ``present`` paths that must still exist
    (files a command must not delete), ``env`` environment variables set for that case only. ``ctx`` holds ``knn`` (a
    fast kNN argv), ``ck`` (the checkpoint folder) and ``unusual``.
    """
    import importlib

    for mod in sorted(Path(__file__).resolve().parent.glob("cases_*.py")):
        module = importlib.import_module(f"bad_inputs.{mod.stem}")
        module.add_cases(out, res, case, ctx)


def _other_entry_points(out: Path, res: Path, case, ck: Path) -> None:
    """pretrain, demo, linear / fine-tune, segmentation, seg-predict, leaderboard, export, data prepare / fmow-csv."""
    tiny = ["--model", "satdino-test-tiny"]
    fast_pre = ["--config", "satdino-demo-tiny", "--set", "epochs=1", "--set", "warmup_teacher_temp_epochs=0",
                "--set", "warmup_epochs=0", "--set", "batch_size_per_gpu=4", "--no-progress"]

    # --- pretraining -------------------------------------------------------------------------------------------------
    empty = out / "no_images"
    empty.mkdir(exist_ok=True)
    (empty / "README.txt").write_text("no pictures here\n")
    pre = ["pretrain", "--config", "satdino-demo-tiny", "--data", "ucm-mini", "--gsd", "0.3", "--no-progress"]
    case("pretrain-unknown-config", ["pretrain", "--config", "satdino-vit_giant-14", "--data", "ucm-mini", "--gsd", "0.3",
                                     "--output", out / "p0"], "error", r"unknown protocol 'satdino-vit_giant-14'")
    case("pretrain-unknown-key", pre + ["--set", "epochz=3", "--output", out / "p1"], "error", r"--set epochz: unknown")
    case("pretrain-bad-value", pre + ["--set", "epochs=many", "--output", out / "p2"], "error", r"epochs must be int")
    case("pretrain-set-without-value", pre + ["--set", "epochs", "--output", out / "p3"], "error", r"expected key=value")
    case("pretrain-inconsistent-config", pre + ["--set", "warmup_teacher_temp_epochs=5", "--set", "epochs=1", "--output", out / "p4"], "error",
         r"warmup_teacher_temp_epochs \(5\) exceeds epochs \(1\)")
    case("pretrain-missing-data", ["pretrain", "--config", "satdino-demo-tiny", "--data", out / "nowhere", "--gsd", "0.3",
                                   "--output", out / "p5"], "error", r"no such file, folder or bundled dataset")
    case("pretrain-folder-without-images", ["pretrain", *fast_pre, "--data", empty, "--gsd", "0.3",
                                            "--output", out / "p6"], "error", r"no images found")
    case("pretrain-split-file-without-gsd", ["pretrain", *fast_pre, "--data", UCM / "train.txt", "--output", out / "p7"],
         "error", r"no per-image GSD; pass --gsd")
    case("pretrain-negative-gsd", pre + ["--gsd", "-1", "--output", out / "p8"], "error", r"--gsd must be > 0")
    bad_img = out / "pretrain_images"
    bad_img.mkdir(exist_ok=True)
    for f in sorted((UCM / "images" / "airplane").glob("*.jpg"))[:5]:
        shutil.copy(f, bad_img / f.name)
    (bad_img / "zzz_zero_byte.jpg").write_bytes(b"")
    case("pretrain-zero-byte-image", ["pretrain", *fast_pre, "--data", bad_img, "--gsd", "0.3", "--output", out / "p9"],
         "error", r"zzz_zero_byte\.jpg is not a readable image")
    fcsv = out / "pretrain_missing_image.csv"
    fcsv.write_text("id,image_path,category_idx,gsd\nairport/airport_0,train/airport/airport_0/x_rgb.jpg,1,0.5\n")
    case("pretrain-csv-missing-image", ["pretrain", *fast_pre, "--data", fcsv, "--data-root", out, "--output", out / "p10"],
         "error", r"pretrain_missing_image\.csv:2: image .* does not exist")
    resume_dir = out / "pretrain_resume"
    resume_dir.mkdir(exist_ok=True)
    (resume_dir / "checkpoint.pth").write_bytes(np.random.default_rng(1).bytes(2048))
    case("pretrain-resume-garbage-checkpoint", pre + ["--output", resume_dir, "--resume"], "error",
         r"checkpoint\.pth: not a readable satbench pretraining checkpoint")
    case("demo-unknown-key", ["demo", "--set", "epochz=1", "--output", out / "demo", "--results-dir", res, "--no-progress"],
         "error", r"--set epochz: unknown")

    # --- linear probe / fine-tuning ----------------------------------------------------------------------------------
    lin = ["run", "--task", "linear", *tiny, "--epochs", "1", "--results-dir", res, "--no-progress",
           "--output-dir", out / "lin"]
    case("linear-garbage-weights", lin + ["--weights", ck / "garbage.pth", "--dataset", "ucm-mini"], "error",
         r"garbage\.pth: not a readable PyTorch checkpoint")
    broken = out / "ds_img_zero-byte"  # made above: one zero-byte jpg in forest/
    case("linear-zero-byte-image", lin + ["--weights", "random", "--dataset", broken], "error", r"not a readable image")
    fm = out / "fmow_bad"
    fm.mkdir(exist_ok=True)
    header = "id,image_path,category_name,category_idx\n"
    (fm / "unknown_idx.csv").write_text(header + "a/a_0,train/a/a_0/x.jpg,volcano,99\n")
    (fm / "name_mismatch.csv").write_text(header + "a/a_0,train/a/a_0/x.jpg,airport,0\n")
    (fm / "no_columns.csv").write_text("id,path\n1,x.jpg\n")
    fmow = ["--weights", "random", "--dataset", "fmow", "--data-root", fm]
    case("linear-fmow-unknown-category", lin + fmow + ["--train-csv", fm / "unknown_idx.csv", "--val-csv", fm / "unknown_idx.csv"],
         "error", r"unknown_idx\.csv:2: unknown category_idx 99")
    case("linear-fmow-category-name-mismatch", lin + fmow + ["--train-csv", fm / "name_mismatch.csv",
                                                            "--val-csv", fm / "name_mismatch.csv"],
         "error", r"name_mismatch\.csv:2: category_name 'airport' is not category 0")
    case("linear-fmow-missing-columns", lin + fmow + ["--train-csv", fm / "no_columns.csv", "--val-csv", fm / "no_columns.csv"],
         "error", r"lacks column\(s\) image_path, category_idx")
    ft_dir = out / "finetune_resume"
    ft_dir.mkdir(exist_ok=True)
    (ft_dir / "checkpoint.pth").write_bytes(np.random.default_rng(2).bytes(2048))
    case("finetune-resume-garbage-checkpoint", ["run", "--task", "finetune", *tiny, "--weights", "random", "--dataset", "ucm-mini",
                                                "--epochs", "1", "--output-dir", ft_dir, "--resume", "--results-dir", res,
                                                "--no-progress"], "error", r"checkpoint\.pth: not a readable")

    # --- segmentation ------------------------------------------------------------------------------------------------
    seg = ["run", "--task", "segmentation", *tiny, "--weights", "random", "--crop", "224", "--results-dir", res, "--no-progress",
           "--work-dir", out / "segwork"]
    case("seg-missing-dataset", seg + ["--dataset", out / "no_such_tiles"], "error", r"neither potsdam, vaihingen, loveda")
    case("seg-unnamed-folder", seg + ["--dataset", empty], "error", r"pass --seg-format")
    case("seg-folder-without-tiles", seg + ["--dataset", empty, "--seg-format", "potsdam"],
         "error", r"img_dir/train is missing")
    case("seg-crop-not-in-recipe", seg + ["--dataset", "potsdam", "--crop", "300"], "usage", r"invalid choice")
    case("seg-predict-without-run", ["seg-predict", "--work-dir", out / "nowhere", "--images", UCM / "images", "--out", out / "png"],
         "error", r"satbench_seg_config\.py does not exist")
    case("seg-config-unknown-model", ["seg-config", "--model", "satdino-vit_huge-14", "--dataset", "potsdam", "--crop", "224",
                                      "--out", out / "seg_cfg.py"], "error", r"unknown model 'satdino-vit_huge-14'")
    case("data-prepare-potsdam-without-zips", ["data", "prepare", "potsdam", "--src", empty,
                                               "--out", out / "segdata"], "error", r"missing 2_Ortho_RGB\.zip")

    # --- leaderboard, export, data tools -------------------------------------------------------------------------------
    bad_res = out / "results_corrupt"
    bad_res.mkdir(exist_ok=True)
    (bad_res / "20260101T000000_knn_x.json").write_text('{"task": "knn", "summary": {"top1_avg": 9')
    # a record that is not readable is skipped with one warning naming it (satbench.records.results.read_records), like every
    # other unusable *.json in a results folder (tests/bad_inputs/cases_io.py, tests/test_io.py)
    case("leaderboard-corrupt-record", ["leaderboard", "--results-dir", bad_res], "ok")
    case("leaderboard-missing-folder", ["leaderboard", "--results-dir", out / "no_results_here"], "error", r"no such folder")
    case("export-garbage-weights", ["export", *tiny, "--weights", ck / "garbage.pth", "--output", out / "e.safetensors"],
         "error", r"not a readable PyTorch checkpoint")
    case("export-nan-weights", ["export", *tiny, "--weights", ck / "nan.pth", "--output", out / "e.safetensors"], "error",
         r"non-finite")
    case("export-unknown-format", ["export", *tiny, "--weights", "random", "--format", "onnx", "--output", out / "e.onnx"],
         "usage", r"invalid choice")
    case("data-prepare-unknown-dataset", ["data", "prepare", "eurosatt", "--src", out, "--out", out / "d"], "error",
         r"no preparer for dataset 'eurosatt'")
    case("data-prepare-missing-src", ["data", "prepare", "eurosat", "--src", out / "no_download", "--out", out / "d"], "error",
         r"is not a folder")
    (out / "struct.json").write_text("{not json")
    case("data-fmow-csv-garbage-struct", ["data", "fmow-csv", "--struct", out / "struct.json", "--split", "train",
                                          "--out", out / "f.csv"], "error", r"struct\.json is not readable JSON")


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bad_input_corpus")
    cases = build(out)
    (out / "manifest.json").write_text(json.dumps(cases, indent=1))
    print(f"{len(cases)} cases written to {out}/manifest.json")


if __name__ == "__main__":
    main()
