"""Extraction throughput of the ``torchgeo:`` family against the plain torchgeo forward, in one process.

For each builder of :data:`satbench.models.backbones.torchgeo_zoo.ZOO` (random init: the timing does not depend on
the weights), on real images (UC Merced from /work/shared when present, else the bundled ucm-mini subset), at 224 and
64 px (patch 14: floored to 56 px, as ``--size-rule floor``): images/s of satbench's ``FeatureExtractor`` (normalise,
forward with the RGB metadata, declared pool) and of torchgeo's own forward on the same, already normalised batch.
Off 224 px the plain model is torchgeo's builder at ``img_size=<size>`` (its positional table resized at build, as
torchgeo documents), since torchgeo's DOFA, Panopticon and Scale-MAE fix their grid at build. Ratio plain / satbench
(1.00 = no overhead; goal within 1.05); timings alternate between the two (best of ``--reps``).

Usage: python bench/bench_torchgeo.py [--batch 8] [--reps 3] [--threads 2] [--models dofa_small_patch16_224 ...]
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from tabulate import tabulate


def load_batch(n: int, size: int) -> torch.Tensor:
    from bench_hf_transformers import load_batch as hf_load_batch

    return hf_load_batch(n, size)


def rate(fn, x: torch.Tensor) -> float:
    t = time.perf_counter()
    fn(x)
    return len(x) / (time.perf_counter() - t)


def plain_model(name: str, size: int, loaded) -> torch.nn.Module:
    """torchgeo's builder at ``img_size=size`` with the loaded weights (pos_embed resized by torchgeo's function)."""
    import torchgeo.models as tgm
    from torchgeo.models.copernicusfm import resize_abs_pos_embed

    spec = loaded.model.spec
    if size == 224 or spec.kind == "copernicusfm":
        return loaded.model.model
    kwargs = {"num_classes": 0} if spec.kind in ("dofa", "scalemae") else {}
    ref = getattr(tgm, name)(img_size=size, **kwargs).eval()
    sd = loaded.model.model.state_dict()
    key = "model.pos_embed" if spec.kind == "panopticon" else "pos_embed"
    sd[key] = resize_abs_pos_embed(sd[key], size // spec.patch_size, 224 // spec.patch_size)
    ref.load_state_dict(sd, strict=True)
    return ref


def main() -> None:
    from satbench.api import load
    from satbench.models.backbones import torchgeo_zoo as tz
    from satbench.models.features import FeatureExtractor

    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="*", default=list(tz.ZOO))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import torchgeo

    rows = []
    for name in args.models:
        loaded = load(f"torchgeo:{name}", "random")
        ext = FeatureExtractor(loaded, device="cpu")
        kind, p = loaded.model.spec.kind, loaded.card.patch_size
        for size in (224, 64):
            s = size // p * p
            plain = plain_model(name, s, loaded)
            x = load_batch(args.batch, s)
            xn = ext.normalize(x)

            def run_plain(b: torch.Tensor) -> None:
                with torch.inference_mode():
                    if kind == "dofa":
                        plain(b, list(tz.RGB_UM))
                    elif kind == "copernicusfm":
                        plain(b, torch.full((len(b), 4), float("nan")), wavelengths=list(tz.RGB_NM),
                              bandwidths=list(tz.RGB_BW_NM))
                    elif kind == "panopticon":
                        plain({"imgs": b, "chn_ids": torch.tensor(tz.RGB_NM).repeat(len(b), 1)})
                    else:
                        plain(b)

            def run_satbench(b: torch.Tensor) -> None:
                ext(b)

            run_plain(xn)
            run_satbench(x)  # warm-up
            r_plain = r_sat = 0.0
            for _ in range(args.reps):
                r_plain = max(r_plain, rate(run_plain, xn))
                r_sat = max(r_sat, rate(run_satbench, x))
            rows.append([name, f"{size}->{s}" if s != size else size, f"{r_sat:.2f}", f"{r_plain:.2f}",
                         f"{r_plain / r_sat:.3f}", loaded.model.options["pool"]])
    print(f"torchgeo {torchgeo.__version__}, torch {torch.__version__}, {args.threads} threads, batch {args.batch}, "
          f"best of {args.reps}")
    print(tabulate(rows, headers=["builder", "px", "satbench img/s", "plain img/s", "plain/satbench", "pool"],
                   tablefmt="github"))


if __name__ == "__main__":
    os.environ.setdefault("SATBENCH_OFFLINE", "1")
    main()
