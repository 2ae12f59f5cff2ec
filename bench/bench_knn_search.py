"""Exact kNN search at fMoW size on synthetic features: seconds and peak memory, blocked vs unblocked.

Features are random (seeded), L2-normalised float32 rows -- no images. Default: 363,000 train x 53,000 queries
(fMoW-RGB train / val) at 384 and 1024 dims, k = 200. Each configuration runs in a child process of its own, so its
peak RSS (``ru_maxrss``, which includes what faiss and MKL allocate in C) is its alone; the table also gives the peak
above the inputs (train + query features, generated in place before the clock starts). On a shared machine compare
the CPU seconds (user + system of the search) rather than the wall-clock seconds; the load average at the start and
end of each search is printed next to them.

Configurations:
* ``faiss``           -- satbench's ``knn_search(backend="faiss")``: ``faiss.knn`` in query blocks (default budget);
* ``faiss-index``     -- the unblocked baseline, as satbench did before: ``IndexFlatIP.add`` + one ``search``;
* ``torch``           -- ``knn_search(backend="torch")`` on the CPU: 1024-query chunks x train blocks, running top-k;
* ``torch-unblocked`` -- the same with an unlimited budget (one [1024, n_train] score block per chunk, as before);
* ``cuda`` / ``cuda-unblocked`` (when CUDA is present) -- the torch path with the features resident on the GPU;
  peak memory there is ``torch.cuda.max_memory_allocated``.
A baseline is skipped when its estimated peak does not fit in the memory available now. The last columns check the
results: the sha256 of (similarities, indices) per configuration, and the share of neighbour indices equal to the
first configuration's.

Usage: python bench/bench_knn_search.py [--quick] [--dims 384 1024] [--n-train N] [--n-query N] [--k 200]
       [--configs faiss faiss-index torch torch-unblocked cuda cuda-unblocked] [--threads 2] [--budget-mb MB]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = ("faiss", "faiss-index", "torch", "torch-unblocked", "cuda", "cuda-unblocked")


def cpu_kind() -> str:
    """``AMX``, ``AVX-512 + avx512_bf16``, ``AVX-512`` or ``AVX2 only`` from /proc/cpuinfo, with the model name."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    flags = set()
    model = ""
    for line in text.splitlines():
        if line.startswith("flags") and not flags:
            flags = set(line.split(":", 1)[1].split())
        if line.startswith("model name") and not model:
            model = line.split(":", 1)[1].strip()
    if "amx_tile" in flags:
        kind = "AMX (amx_tile" + (", amx_bf16" if "amx_bf16" in flags else "") + ")"
    elif "avx512_bf16" in flags:
        kind = "AVX-512 + avx512_bf16"
    elif "avx512f" in flags:
        kind = "AVX-512 (no bf16)"
    elif "avx2" in flags:
        kind = "AVX2 only"
    else:
        kind = "no AVX2"
    return f"{model or 'CPU'}: {kind}, {os.cpu_count()} logical cores"


def available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def make_features(n: int, d: int, seed: int, device: str = "cpu"):
    """``[n, d]`` float32 standard normal rows, L2-normalised in place, block by block (no full-size temporaries)."""
    import torch

    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.empty(n, d, dtype=torch.float32, device=device)
    for a in range(0, n, 65536):
        blk = x[a:a + 65536]
        blk.normal_(generator=g)
        blk.div_(blk.norm(dim=1, keepdim=True).clamp_min_(1e-12))
    return x


def estimate_peak(cfg: str, n_train: int, n_query: int, d: int, k: int) -> int:
    """Bytes a configuration needs beyond nothing (inputs included): to skip unblocked baselines that cannot fit."""
    inputs = 4 * d * (n_train + n_query)
    out = 12 * n_query * (k + 1) * 2
    if cfg == "faiss-index":
        return inputs + 4 * d * n_train + out
    if cfg == "torch-unblocked":
        return inputs + 4 * 1024 * n_train * 2 + out
    return inputs + out + (1 << 30)


def child(cfg: str, n_train: int, n_query: int, d: int, k: int, threads: int, budget: int | None, out: str) -> None:
    """One configuration in this (child) process; writes a JSON line of figures and the results to ``out``."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from satbench.eval.knn_search import knn_search

    dev = "cuda" if cfg.startswith("cuda") else "cpu"
    xtr = make_features(n_train, d, 0, dev)
    xq = make_features(n_query, d, 1, dev)
    if dev == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base_gpu = torch.cuda.memory_allocated()
    rss_inputs = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    info: dict = {}
    load0 = os.getloadavg()[0]
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    if cfg == "faiss-index":
        import faiss

        faiss.omp_set_num_threads(threads)
        index = faiss.IndexFlatIP(d)
        index.add(xtr.numpy())
        s, i = index.search(xq.numpy(), k)
        sims, idx = torch.from_numpy(s), torch.from_numpy(i)
        info = {"blocks": 1, "note": "IndexFlatIP add + search"}
    else:
        backend = "faiss" if cfg == "faiss" else "torch"
        big = 1 << 50 if cfg.endswith("unblocked") else budget
        sims, idx = knn_search(xtr, xq, k, backend=backend, max_block_bytes=big, info=info)
    if dev == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    res = {"config": cfg, "d": d, "seconds": seconds, "cpu_seconds": cpu, "load": [load0, os.getloadavg()[0]],
           "rss_inputs": rss_inputs,
           "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
           "sha256": hashlib.sha256(sims.numpy().tobytes() + idx.numpy().tobytes()).hexdigest(),
           "plan": {k_: v for k_, v in info.items() if k_ in ("block_bytes", "query_block", "train_block", "blocks",
                                                               "note")}}
    if dev == "cuda":
        res["gpu_peak"] = torch.cuda.max_memory_allocated()
        res["gpu_inputs"] = base_gpu
        res["gpu"] = torch.cuda.get_device_name()
    np.save(out + ".idx.npy", idx.numpy())
    Path(out).write_text(json.dumps(res))


def run_config(cfg: str, args: argparse.Namespace, d: int, tmp: str) -> dict | None:
    out = os.path.join(tmp, f"{cfg}-{d}.json")
    cmd = [sys.executable, __file__, "--child", cfg, "--dims", str(d), "--n-train", str(args.n_train), "--n-query",
           str(args.n_query), "--k", str(args.k), "--threads", str(args.threads), "--out", out]
    if args.budget_mb:
        cmd += ["--budget-mb", str(args.budget_mb)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                                      os.environ.get("PYTHONPATH")]))}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"  {cfg} d={d}: failed (rc {r.returncode}): {r.stderr.strip().splitlines()[-1:]}", flush=True)
        return None
    return json.loads(Path(out).read_text()) | {"idx_file": out + ".idx.npy"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="20,000 train x 3,000 queries at 384 dims")
    ap.add_argument("--dims", type=int, nargs="+", default=None)
    ap.add_argument("--n-train", type=int, default=None)
    ap.add_argument("--n-query", type=int, default=None)
    ap.add_argument("--k", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget-mb", type=int, default=0, help="block budget (default: satbench's default_block_bytes)")
    ap.add_argument("--configs", nargs="+", choices=CONFIGS, default=None)
    ap.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.n_train = a.n_train or (20_000 if a.quick else 363_000)
    a.n_query = a.n_query or (3_000 if a.quick else 53_000)
    a.dims = a.dims or ([384] if a.quick else [384, 1024])
    budget = a.budget_mb * 2**20 if a.budget_mb else None
    if a.child:
        child(a.child, a.n_train, a.n_query, a.dims[0], a.k, a.threads, budget, a.out)
        return

    import numpy as np
    import torch
    from tabulate import tabulate

    cuda = torch.cuda.is_available()
    configs = a.configs or [c for c in CONFIGS if cuda or not c.startswith("cuda")]
    print(cpu_kind())
    if cuda:
        print(f"GPU: {torch.cuda.get_device_name()}, matmul TF32 allowed: {torch.backends.cuda.matmul.allow_tf32}")
    print(f"{a.n_train:,} train x {a.n_query:,} queries, k = {a.k}, dims {a.dims}, {a.threads} threads, "
          f"budget {'default' if not budget else f'{a.budget_mb} MiB'}; torch {torch.__version__}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_knn_search_") as tmp:
        for d in a.dims:
            first_idx = None
            for cfg in configs:
                need = estimate_peak(cfg, a.n_train, a.n_query, d, a.k)
                if not cfg.startswith("cuda") and need > 0.85 * available_bytes():
                    rows.append([d, cfg, "skipped", "", "", f"needs ~{need / 2**30:.1f} GiB", "", "", "", "", ""])
                    continue
                r = run_config(cfg, a, d, tmp)
                if r is None:
                    rows.append([d, cfg, "failed", "", "", "", "", "", "", "", ""])
                    continue
                idx = np.load(r["idx_file"])
                if first_idx is None:
                    first_idx, agree = idx, 1.0
                else:
                    agree = float((idx == first_idx).mean())
                gpu = (f"{r['gpu_peak'] / 2**30:.2f} (inputs {r['gpu_inputs'] / 2**30:.2f})" if "gpu_peak" in r else "-")
                plan = r["plan"]
                rows.append([d, cfg, f"{r['seconds']:.1f}", f"{r['cpu_seconds']:.0f}",
                             "{:.1f}/{:.1f}".format(*r["load"]), f"{r['rss_peak'] / 2**30:.2f}",
                             f"{(r['rss_peak'] - r['rss_inputs']) / 2**30:.2f}", gpu,
                             f"{plan.get('blocks', '')} x {plan.get('query_block', '')}q/{plan.get('train_block', '')}t",
                             r["sha256"][:12], f"{agree:.4f}"])
                print(f"  done: d={d} {cfg} {r['seconds']:.1f} s", flush=True)
    print(tabulate(rows, headers=["dim", "config", "seconds", "CPU s", "load avg", "peak RSS GiB", "RSS above inputs GiB", "GPU peak GiB",
                                  "blocks", "sha256(sims,idx)", "idx = first"]))


if __name__ == "__main__":
    main()
