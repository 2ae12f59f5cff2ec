"""What a 12 x 5 corruption sweep (``--corruptions all``, protocol reo-v1) costs on full UC Merced.

(a) The corruption functions: images/s of every type (mean over the chosen severities) on the decoded native-size
    images of the test (val) split, each call with its own :func:`corruption_rng` generator, against two plain baselines
    in the same process: decoding the image (``read_rgb`` + ``np.asarray``) and a numpy copy of the decoded array.
(b) The sweep's extraction for a model (``satdino-vit_small-16``, random init, the SatDINO 4-scale kNN protocol
    ``satdino-knn-v1``): forward passes needed = test images x conditions x scales; one cold run into a fresh feature
    cache (:func:`satbench.eval.corruption_eval.extract_corrupted`, the path ``--corruptions`` takes) and one re-run,
    which must do 0 forward passes. Forward passes are counted twice: by satbench's own ``ExtractStats`` and by a
    counter wrapped around the backbone's ``forward_features``. The clean 4-scale extraction of the same images is the
    baseline of the same process (ratio column).
With 2 CPU threads the full sweep (420 images x 60 conditions x 4 scales = 100,800 forward passes) takes about an hour:
``--limit`` / ``--types`` / ``--severities`` measure a part, and the full figures are printed separately, labelled as
extrapolated from the measured per-image rates.

Usage: python bench/bench_corruption_sweep.py [--data /work/shared/data/uc_merced] [--limit N] [--fn-limit N]
                                              [--types T ...] [--severities 1..5] [--threads 2] [--skip-extract]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cache import cpu_kind  # noqa: E402  (the house CPU-kind line: model, AVX2 / AVX-512 BF16 / AMX)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_functions(ds, kinds, sevs, limit, settings) -> tuple[list[dict], float]:
    """(a): one row per baseline and per type; returns the rows and the mean seconds per corruption call."""
    import numpy as np

    from satbench.data.corruptions import corrupt, corruption_rng
    from satbench.data.images import read_rgb

    samples = ds.samples("val")[:limit] if limit else ds.samples("val")
    sha = ds.splits["val"].sha256
    t = time.perf_counter()
    arrays = [np.asarray(read_rgb(s.path), dtype=np.uint8) for s in samples]
    decode_s = time.perf_counter() - t
    n = len(arrays)
    t = time.perf_counter()
    for a in arrays:
        a.copy()
    copy_s = time.perf_counter() - t
    rows = [{"what": "baseline: decode (read_rgb + asarray)", "images": n, "seconds": decode_s, "img/s": n / decode_s},
            {"what": "baseline: numpy copy", "images": n, "seconds": copy_s, "img/s": n / copy_s}]
    total_s, calls = 0.0, 0
    for kind in kinds:
        secs = 0.0
        for sev in sevs:
            t = time.perf_counter()
            for i, a in enumerate(arrays):
                corrupt(a, kind, sev, corruption_rng(sha, i, kind, sev, settings.seed), settings)
            secs += time.perf_counter() - t
        total_s, calls = total_s + secs, calls + n * len(sevs)
        ips = n * len(sevs) / secs
        rows.append({"what": kind, "images": n * len(sevs), "seconds": secs, "img/s": ips})
    for r in rows:
        r["x decode"] = r["img/s"] / rows[0]["img/s"]
        r["ms/img"] = 1000 * r["seconds"] / r["images"]
        r["peak_MiB"] = peak_mib()
    return rows, total_s / calls


class ForwardCounter:
    """Counts the images through the backbone's ``forward_features`` (independent of satbench's own statistics)."""

    def __init__(self, model) -> None:
        self.images = 0
        inner = model.forward_features

        def counted(x, *a, **k):
            self.images += int(x.shape[0])
            return inner(x, *a, **k)

        model.forward_features = counted


def bench_extract(ds, kinds, sevs, limit, threads, work: Path) -> tuple[list[dict], dict]:
    """(b): clean baseline, cold sweep, re-run; returns rows and the rates used for the extrapolation."""
    import numpy as np

    from satbench.config.protocols import load_protocol
    from satbench.eval.cache import FeatureCache
    from satbench.eval.corruption_eval import CorruptionPlan, extract_corrupted
    from satbench.eval.extract import ExtractStats, extract_views
    from satbench.eval.knn_protocols import build_scale_entries, protocol_normalization
    from satbench.data.corruptions import load_corruption_protocol
    from satbench.models.features import FeatureExtractor
    from satbench.models.registry import get_card
    from satbench.models.weights import load_model

    proto = load_protocol("satdino-knn-v1")
    loaded = load_model(get_card("satdino-vit_small-16"), "random", seed=0)
    entries = build_scale_entries(proto, ds, loaded)
    views = list({e.view.key: e.view for e in entries}.values())
    ex = FeatureExtractor(loaded, normalization=protocol_normalization(proto, ds, None), device="cpu", bf16=False)
    counter = ForwardCounter(ex.model)
    samples = ds.samples("val")[:limit] if limit else ds.samples("val")
    sha = ds.splits["val"].sha256
    cproto, settings = load_corruption_protocol("reo-v1")
    plan = CorruptionPlan(cproto, settings, tuple(kinds), tuple(sevs))
    n, nc, ns = len(samples), len(plan.conditions), len(views)
    rows = []

    def row(what, seconds, st_fwd, hook_fwd, decoded, hits=None, misses=None):
        rows.append({"what": what, "images": n, "conditions": nc if "clean" not in what else 1, "scales": ns,
                     "forward (stats)": st_fwd, "forward (hook)": hook_fwd, "decoded": decoded, "seconds": seconds,
                     "fwd img/s": st_fwd / seconds if st_fwd else 0.0, "cache hits": hits, "cache misses": misses,
                     "peak_MiB": peak_mib()})

    import torch

    ex(torch.zeros(1, 3, 32, 32))  # warm-up (not counted)
    counter.images = 0
    st = ExtractStats()
    t = time.perf_counter()
    extract_views(ex, samples, views, split_sha256=sha, cache=None, num_workers=1, progress=False, stats=st)
    clean_s = time.perf_counter() - t
    row("clean 4-scale extraction (baseline, no cache)", clean_s, st.forward_images, counter.images, st.images_decoded)
    runs = {}
    for label in ("cold sweep (fresh cache)", "re-run (same cache)"):
        counter.images = 0
        cache = FeatureCache(work / "cache")
        t = time.perf_counter()
        got = extract_corrupted(ex, samples, views, plan, split_sha256=sha, cache=cache, batch_size=64,
                                num_workers=1, progress=False)
        secs = time.perf_counter() - t
        runs[label] = got
        row(label, secs, got.stats["forward_images"], counter.images, got.stats["images_decoded"],
            got.cache["hits"], got.cache["misses"])
    cold, warm = runs.values()
    same = all(np.array_equal(cold.feats[c][k], warm.feats[c][k]) for c in cold.feats for k in cold.feats[c])
    for r in rows:
        r["x clean"] = r["fwd img/s"] / rows[0]["fwd img/s"] if r["fwd img/s"] else 0.0
    rates = {"cold_s_per_image_condition": rows[1]["seconds"] / (n * nc), "rerun_s_per_image_condition":
             rows[2]["seconds"] / (n * nc), "clean_s_per_image": clean_s / n, "scales": ns, "rerun_equal": same,
             "rerun_forward": rows[2]["forward (stats)"], "rerun_hook": rows[2]["forward (hook)"],
             "cold_forward": rows[1]["forward (stats)"]}
    return rows, rates


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="/work/shared/data/uc_merced", help="UC Merced folder (official split files)")
    ap.add_argument("--limit", type=int, default=None, help="first N val images for the extraction part (b)")
    ap.add_argument("--fn-limit", type=int, default=None, help="first N val images for the function part (a)")
    ap.add_argument("--types", nargs="+", default=None, help="corruption types (default all 12)")
    ap.add_argument("--severities", nargs="+", default=None, help="severities (default 1..5)")
    ap.add_argument("--extract-types", nargs="+", default=None, help="types for part (b) (default: --types)")
    ap.add_argument("--extract-severities", nargs="+", default=None, help="severities for part (b) (default: --severities)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-extract", action="store_true", help="only part (a)")
    ap.add_argument("--work", default=None, help="folder for the fresh feature cache (default: a new temp dir)")
    a = ap.parse_args()
    import torch
    from tabulate import tabulate

    from satbench.data.corruptions import SEVERITIES, TYPES, load_corruption_protocol, parse_severities, parse_types
    from satbench.data.scene import open_scene_dataset

    torch.set_num_threads(a.threads)
    kinds = parse_types(a.types)
    sevs = parse_severities(a.severities) if a.severities else list(SEVERITIES)
    ds = open_scene_dataset(a.data)  # the folder's train.txt / val.txt: the official split, .tif -> .jpg
    n_val = len(ds.samples("val"))
    _, settings = load_corruption_protocol("reo-v1")
    print(f"cpu: {cpu_kind()}; torch threads {a.threads}; data {a.data} (its official split files, {n_val} val images)")

    rows, s_per_call = bench_functions(ds, kinds, sevs, a.fn_limit, settings)
    print(f"\n(a) corruption functions on decoded native-size val images, severities {sevs} (img/s per type = mean "
          f"over severities)")
    print(tabulate(rows, headers="keys", floatfmt=".3f"))
    full_calls = n_val * len(TYPES) * len(SEVERITIES)
    if len(kinds) == len(TYPES) and len(sevs) == len(SEVERITIES):
        print(f"corruption calls of a full 12 x 5 sweep: {full_calls} ({n_val} x 60), "
              f"{full_calls * s_per_call:.1f} s at the measured mean {1000 * s_per_call:.2f} ms/call"
              + ("" if not a.fn_limit else f" (EXTRAPOLATED from {a.fn_limit} images)"))
    if a.skip_extract:
        return 0

    ek = parse_types(a.extract_types) if a.extract_types else kinds
    es = parse_severities(a.extract_severities) if a.extract_severities else sevs
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="bench_corruption_sweep_"))
    rows, rates = bench_extract(ds, ek, es, a.limit, a.threads, work)
    n = a.limit or n_val
    print(f"\n(b) sweep extraction, satdino-vit_small-16 random init, satdino-knn-v1 ({rates['scales']} scales), "
          f"{n} val images x {len(ek)} types x {len(es)} severities (measured)")
    print(tabulate(rows, headers="keys", floatfmt=".3f"))
    print(f"re-run: {rates['rerun_forward']} forward passes (satbench stats), {rates['rerun_hook']} (hook); features "
          f"equal to the cold run's: {rates['rerun_equal']}; forward passes saved by the cache: {rates['cold_forward']}")
    if n < 64:
        print(f"\nWARNING: {n} images per condition is less than one extraction batch (64): the per-condition overhead "
              f"dominates and the extrapolation below overstates the cost; use --limit 64 or more")
    full_fwd = n_val * len(TYPES) * len(SEVERITIES) * rates["scales"]
    cold_full = rates["cold_s_per_image_condition"] * n_val * 60
    warm_full = rates["rerun_s_per_image_condition"] * n_val * 60
    print(f"\nfull 12 x 5 sweep on UC Merced val ({n_val} images), EXTRAPOLATED from the measured per-(image, condition) "
          f"rates above: forward passes {n_val} x 60 x {rates['scales']} = {full_fwd}; cold ~{cold_full:.0f} s "
          f"(~{cold_full / 60:.1f} min); re-run ~{warm_full:.1f} s with 0 forward passes; forward passes saved by the "
          f"cache on a re-run: {full_fwd}; clean 4-scale val extraction for comparison ~{rates['clean_s_per_image'] * n_val:.0f} s")
    return 0 if rates["rerun_forward"] == 0 and rates["rerun_hook"] == 0 and rates["rerun_equal"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
