"""Extraction throughput of the ``hf-transformers:`` family against the plain transformers forward, in one process.

For each shipped class (ViT-S-sized configs, random init: the timing does not depend on the weights), on real images
(UC Merced from /work/shared when present, else the bundled ucm-mini subset), at 224 and 64 px (patch 14 models:
floored to 56 px, as ``--size-rule floor``): images/s of satbench's ``FeatureExtractor`` (normalise, forward,
declared pool) and of the plain ``model(pixel_values=x)`` on the same, already normalised batch (with
``interpolate_pos_encoding=True`` where the class needs it), and the ratio plain / satbench (1.00 = no overhead; the
goal is within 1.05). Timings alternate between the two (best of ``--reps``) so drifts of a shared machine hit both.

Usage: python bench/bench_hf_transformers.py [--batch 16] [--reps 5] [--threads 2] [--classes Dinov2Model ...]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from tabulate import tabulate

VIT_S = dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536)
#: class -> (config class, config, needs interpolate_pos_encoding)
CLASSES = {
    "Dinov2Model": ("Dinov2Config", dict(VIT_S, patch_size=14, image_size=518), False),
    "Dinov2WithRegistersModel": ("Dinov2WithRegistersConfig", dict(VIT_S, patch_size=14, image_size=518,
                                                                   num_register_tokens=4), False),
    "DINOv3ViTModel": ("DINOv3ViTConfig", dict(VIT_S, patch_size=16, image_size=224, num_register_tokens=4,
                                               query_bias=False, key_bias=False, value_bias=False), False),
    "ViTModel": ("ViTConfig", dict(VIT_S, patch_size=16, image_size=224), True),
    "CLIPVisionModel": ("CLIPVisionConfig", dict(VIT_S, patch_size=16, image_size=224), True),
    "SiglipVisionModel": ("SiglipVisionConfig", dict(VIT_S, patch_size=16, image_size=224), True),
}
PRE = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "do_rescale": True,
       "rescale_factor": 1 / 255, "do_normalize": True}


def image_root() -> Path:
    shared = Path("/work/shared/data/uc_merced")
    if (shared / "images").is_dir():
        return shared
    from satbench.runtime.resources import bundled_data_dir

    return bundled_data_dir() / "ucm-mini"


def load_batch(n: int, size: int) -> torch.Tensor:
    from satbench.data.images import read_rgb
    from satbench.data.transforms import knn_transform

    files = sorted((image_root() / "images").rglob("*.jpg"))[:n]
    t = knn_transform(size)
    return torch.stack([t(read_rgb(f)) for f in files])


def snapshot(folder: Path, class_name: str) -> tuple[Path, torch.nn.Module]:
    import transformers

    cfg_name, cfg, _ = CLASSES[class_name]
    torch.manual_seed(0)
    model = getattr(transformers, class_name)(getattr(transformers, cfg_name)(**cfg)).eval()
    model.save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps(PRE))
    return folder, model


def rate(fn, x: torch.Tensor) -> float:
    t = time.perf_counter()
    fn(x)
    return len(x) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--classes", nargs="*", default=list(CLASSES))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    from satbench.api import load
    from satbench.models.features import FeatureExtractor

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.classes:
            folder, plain = snapshot(Path(tmp) / name, name)
            loaded = load(f"hf-transformers:{folder}", None)
            ext = FeatureExtractor(loaded, device="cpu")
            kw = {"interpolate_pos_encoding": True} if CLASSES[name][2] else {}
            p = loaded.card.patch_size
            for size in (224, 64):
                s = size // p * p
                x = load_batch(args.batch, s)
                xn = ext.normalize(x)

                def run_plain(b: torch.Tensor) -> None:
                    with torch.inference_mode():
                        plain(pixel_values=b, **kw)

                def run_satbench(b: torch.Tensor) -> None:
                    ext(b)

                run_plain(xn)
                run_satbench(x)  # warm-up
                r_plain = r_sat = 0.0
                for _ in range(args.reps):
                    r_plain = max(r_plain, rate(run_plain, xn))
                    r_sat = max(r_sat, rate(run_satbench, x))
                rows.append([name, f"{size}->{s}" if s != size else size, f"{r_sat:.1f}", f"{r_plain:.1f}",
                             f"{r_plain / r_sat:.3f}", loaded.model.options["pool"]])
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, {args.threads} threads, batch "
          f"{args.batch}, best of {args.reps}, images from {image_root()}")
    print(tabulate(rows, headers=["class (ViT-S dims)", "px", "satbench img/s", "plain img/s", "plain/satbench",
                                  "pool"], tablefmt="github"))


if __name__ == "__main__":
    os.environ.setdefault("SATBENCH_OFFLINE", "1")
    main()
