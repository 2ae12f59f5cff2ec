"""What the feature cache's content guarantee costs: warm-cache 4-scale kNN re-runs with the old key scheme (split-file
hash only) vs the new one (every image identified by stat, or by sha256 of its bytes), on the same features.

1. One cold 4-scale kNN run (satdino-knn-v1, satdino-vit_small-16, random init) with the current code fills a cache
   (this is the slow part: ~5-10 min on full UC Merced on 2 CPU threads); its features are dumped.
2. The same features are stored under the keys of (a) the old code (``--old-ref``, extracted with ``git archive`` into a
   temporary folder; its own ``FeatureCache.put``) and (b) the current code in ``sha256`` identity mode, so no second
   forward pass is needed.
3. Warm re-runs of ``run_knn`` (model loaded once, ``--repeats`` runs, median) with each scheme in a fresh process,
   plus the image-identity computation alone. Every warm run must be served entirely from its cache and give the cold
   run's numbers.

Usage: python bench/bench_cache.py [--data /work/shared/data/uc_merced] [--old-ref REF] [--threads 2] [--repeats 5]
                                   [--rounds 3] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: The last commit before the content identity (keys: split-file hash only); the lead may pass another.
DEFAULT_OLD_REF = "74b900d"


def cpu_kind() -> str:
    flags: set[str] = set()
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("model name") and model == "?":
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    if {"avx512_bf16", "amx_tile"} & flags:
        kind = "AVX-512 BF16" + (" + AMX" if "amx_tile" in flags else "")
    elif "avx512f" in flags:
        kind = "AVX-512 (no BF16)"
    elif "avx2" in flags:
        kind = "AVX2 only"
    else:
        kind = "no AVX2"
    return f"{model}, {kind}, {os.cpu_count()} logical CPUs" + (", SHA-NI" if "sha_ni" in flags else "")


# ---------------------------------------------------------------------------------------------------------------------
# Worker side: runs with PYTHONPATH pointing at either the current or the old source tree
# ---------------------------------------------------------------------------------------------------------------------
def _setup(a):
    import torch

    torch.set_num_threads(a.threads)
    from satbench.data.scene import open_scene_dataset
    from satbench.config.protocols import load_protocol
    from satbench.models.registry import get_card
    from satbench.models.weights import load_model

    ds = open_scene_dataset(a.data)
    proto = load_protocol("satdino-knn-v1")
    loaded = load_model(get_card("satdino-vit_small-16"), "random", seed=0)
    return ds, proto, loaded


def _views_and_extractor(ds, proto, loaded):
    from satbench.eval.knn_protocols import build_scale_entries, protocol_normalization
    from satbench.models.features import FeatureExtractor

    entries = build_scale_entries(proto, ds, loaded.card.family)
    norm = protocol_normalization(proto, ds, None)
    ex = FeatureExtractor(loaded, normalization=norm, device="cpu", bf16=False)
    return list({e.view.key: e.view for e in entries}.values()), ex


def _cache(a):
    from satbench.eval.cache import FeatureCache

    return FeatureCache(a.cache, identity=a.identity) if a.identity else FeatureCache(a.cache)


def worker(a) -> dict:
    ds, proto, loaded = _setup(a)
    from satbench.eval.task_knn import run_knn

    if a.worker == "cold":
        t = time.perf_counter()
        rec = run_knn(loaded, ds, proto, device="cpu", cache=_cache(a), progress=False, num_workers=1)
        seconds = time.perf_counter() - t
        from satbench.eval.extract import extract_views

        views, ex = _views_and_extractor(ds, proto, loaded)
        for split in ("train", "val"):  # warm: read back from the cache just written
            feats = extract_views(ex, ds.samples(split), views, split_sha256=ds.splits[split].sha256, cache=_cache(a),
                                  progress=False, num_workers=0)
            for key, arr in feats.items():
                import numpy as np

                np.save(Path(a.dump) / f"{split}__{key}.npy", arr)
        return {"seconds": seconds, "summary": rec["summary"], "forward_images": rec["extra"]["extraction"]["forward_images"]}
    if a.worker == "seed":  # store the dumped features under this code's keys
        import inspect

        import numpy as np
        from satbench.eval.extract import cache_key

        views, ex = _views_and_extractor(ds, proto, loaded)
        cache = _cache(a)
        new_keys = "images" in inspect.signature(cache_key).parameters
        n = 0
        for split in ("train", "val"):
            samples = ds.samples(split)
            extra = {"images": cache.image_identity([s.path for s in samples])} if new_keys else {}
            for v in views:
                arr = np.load(Path(a.dump) / f"{split}__{v.key}.npy")
                cache.put(cache_key(ex, ds.splits[split].sha256, v, **extra), arr,
                          {"model": loaded.card.name, "view": v.key, "n": len(samples)})
                n += 1
        return {"stored": n}
    if a.worker == "warm":
        times, extract, rec = [], [], None
        for _ in range(a.repeats):
            cache = _cache(a)
            t = time.perf_counter()
            rec = run_knn(loaded, ds, proto, device="cpu", cache=cache, progress=False, num_workers=1)
            times.append(time.perf_counter() - t)
            extract.append(rec["timings"]["extract_s"])
        out = {"times": times, "extract": extract, "summary": rec["summary"],
               "hits": rec["extra"]["cache"]["hits"], "forward_images": rec["extra"]["extraction"]["forward_images"]}
        if a.identity:
            from satbench.eval.cache import image_identity

            paths = [s.path for split in ("train", "val") for s in ds.samples(split)]
            ids = []
            for _ in range(a.repeats):
                t = time.perf_counter()
                image_identity(paths, a.identity)
                ids.append(time.perf_counter() - t)
            out["identity"] = ids
        return out
    raise SystemExit(f"unknown worker {a.worker}")


# ---------------------------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------------------------
def _call(src: Path, args: list[str], timeout: int = 3600) -> dict:
    env = dict(os.environ, PYTHONPATH=str(src), SATBENCH_OFFLINE="1")
    env.pop("SATBENCH_CACHE_IDENTITY", None)
    p = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], capture_output=True, text=True, env=env,
                       timeout=timeout)
    if p.returncode != 0:
        raise SystemExit(f"worker {args[:2]} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/uc_merced")
    ap.add_argument("--old-ref", default=DEFAULT_OLD_REF, help="git ref of the old key scheme")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5, help="run_knn calls per warm process")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved warm rounds (one process per scheme each)")
    ap.add_argument("--work", default=None, help="work folder; reusing one skips the cold run (default: a new temp dir)")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cache", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--dump", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--identity", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a)))
        return

    from tabulate import tabulate

    tmp = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="bench_cache_"))
    tmp.mkdir(parents=True, exist_ok=True)
    old_src = tmp / "old_src"
    if not old_src.exists():
        old_src.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", a.old_ref], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old_src)], input=archive, check=True)
    dump = tmp / "features"
    dump.mkdir(exist_ok=True)
    common = ["--data", a.data, "--threads", str(a.threads), "--repeats", str(a.repeats), "--dump", str(dump)]
    new, old = REPO, old_src
    c_new, c_sha, c_old = tmp / "cache_stat", tmp / "cache_sha256", tmp / "cache_old"

    cold_file = tmp / "cold.json"
    if cold_file.exists():  # --work of an earlier invocation: the cold run is not repeated
        cold = json.loads(cold_file.read_text())
    else:
        print(f"cold run (current code, stat identity) on {a.data} ...", file=sys.stderr, flush=True)
        cold = _call(new, ["--worker", "cold", "--cache", str(c_new), "--identity", "stat", *common])
        _call(old, ["--worker", "seed", "--cache", str(c_old), *common])
        _call(new, ["--worker", "seed", "--cache", str(c_sha), "--identity", "sha256", *common])
        cold_file.write_text(json.dumps(cold))
    schemes = {
        "old: split-file hash only (no image identity)": (old, ["--cache", str(c_old)]),
        "new default: stat (path, size, mtime_ns, ctime_ns, inode)": (new, ["--cache", str(c_new), "--identity", "stat"]),
        "new --cache-identity sha256 (every image's bytes)": (new, ["--cache", str(c_sha), "--identity", "sha256"]),
    }
    runs: dict[str, dict] = {name: {"times": [], "extract": [], "identity": []} for name in schemes}
    for r in range(a.rounds):  # interleaved, so that a change of load on the machine hits every scheme alike
        for name, (src, extra) in schemes.items():
            print(f"warm round {r + 1}/{a.rounds}: {name}", file=sys.stderr, flush=True)
            res = _call(src, ["--worker", "warm", *extra, *common])
            if res["summary"] != cold["summary"] or res["forward_images"] != 0:
                raise SystemExit(f"{name}: not served entirely from the cache or different numbers")
            for k in ("times", "extract", "identity"):
                runs[name][k] += res.get(k, [])
    n_img = sum(1 for split in ("train", "val") for ln in (Path(a.data) / f"{split}.txt").read_text().split() if ln)
    med = {name: statistics.median(r["times"]) for name, r in runs.items()}
    t_old = med["old: split-file hash only (no image identity)"]
    rows = [["cold run (fills the cache)", f"{cold['seconds']:.1f}", "-", "-", n_img, "-", cold["forward_images"]]]
    for name, r in runs.items():
        ident = f"{1000 * statistics.median(r['identity']):.1f}" if r["identity"] else "-"
        rows.append([f"warm: {name}", f"{med[name]:.3f}", f"{statistics.median(r['extract']):.3f}", ident, n_img,
                     f"{med[name] / t_old:.2f}x", 0])
    size_mb = sum(os.path.getsize(Path(a.data) / "images" / ln[2:]) for split in ("train", "val")
                  for ln in (Path(a.data) / f"{split}.txt").read_text().split() if ln) / 2**20
    print(f"{n_img} images ({size_mb:.1f} MiB) in {a.data}; 4-scale kNN (satdino-knn-v1), satdino-vit_small-16 random "
          f"init, {a.threads} threads; warm = median of {a.rounds} interleaved rounds x {a.repeats} run_knn calls "
          f"(one process per round and scheme)")
    print(f"CPU: {cpu_kind()}; load average at the end: {os.getloadavg()[0]:.1f}")
    print(tabulate(rows, headers=["run", "run_knn s", "of which extract s", "image identity alone ms", "images",
                                  "vs old warm", "forward images"]))
    print(f"every warm run: all views from the cache, top-1 identical to the cold run "
          f"(top1_avg {cold['summary']['top1_avg']:.2f}); old ref {a.old_ref}; work folder {tmp}")

if __name__ == "__main__":
    main()
