"""GPU check of the blocked exact kNN search (about a minute on an H200; ``--quick`` runs small sizes on the CPU too).

1. Equality on the device (features generated and kept there): blocked search (small budget: many train blocks) ==
   unblocked search, bit for bit (similarities and indices), on random features; the tie rule on exactly
   representable tie-heavy features == a float64 brute-force reference; agreement with faiss on the CPU (if
   installed); the vote form (official at T = 0.07, shifted at T = 0.005) on device-resident features.
2. fMoW-sized search (363,000 train x 53,000 queries, k = 200, random L2-normalised features) at 384 and 1024 dims:
   seconds and ``torch.cuda.max_memory_allocated`` for the default budget and for a small budget (blocked), and
   whether both give identical results.

Prints PASS/FAIL lines and a table; exits 1 if any equality check fails.

Usage: python bench/gpu_knn_check.py [--quick] [--device cuda|cpu] [--dims 384 1024]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from satbench.eval.knn_vote import knn_classify
from satbench.eval.knn_search import knn_search  # noqa: E402

FAILED: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  ({detail})" if detail else ""), flush=True)
    if not ok:
        FAILED.append(name)


def features(n: int, d: int, seed: int, device: str) -> torch.Tensor:
    """``[n, d]`` float32 standard normal rows, L2-normalised in place on ``device``, block by block."""
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.empty(n, d, dtype=torch.float32, device=device)
    for a in range(0, n, 65536):
        blk = x[a:a + 65536]
        blk.normal_(generator=g)
        blk.div_(blk.norm(dim=1, keepdim=True).clamp_min_(1e-12))
    return x


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def same(a, b) -> tuple[bool, str]:
    eq_i, eq_s = torch.equal(a[1], b[1]), torch.equal(a[0], b[0])
    diff = (a[0] - b[0]).abs().max().item() if a[0].shape == b[0].shape else math.nan
    return eq_i and eq_s, f"indices equal {eq_i}, similarities equal {eq_s}, max |diff| {diff:.2e}"


def equality(device: str, quick: bool) -> None:
    n_train, n_query, d, k = (6000, 700, 384, 200) if quick else (100_000, 8192, 384, 200)
    xtr, xq = features(n_train, d, 0, device), features(n_query, d, 1, device)
    info_u, info_b = {}, {}
    unb = knn_search(xtr, xq, k, backend="torch", max_block_bytes=1 << 50, info=info_u)
    blk = knn_search(xtr, xq, k, backend="torch", max_block_bytes=1, info=info_b)
    ok, detail = same(blk, unb)
    check(f"blocked == unblocked on {device}, random {n_train}x{n_query}x{d}, k={k} "
          f"(train blocks {info_b['train_block']} vs {info_u['train_block']})", ok, detail)
    try:
        import faiss  # noqa: F401

        f = knn_search(xtr.cpu(), xq.cpu(), k, backend="faiss")
        agree = (f[1] == unb[1]).float().mean().item()
        check(f"torch on {device} vs faiss on CPU: same neighbours", agree > 0.999,
              f"index agreement {agree:.5f}, max |sim diff| {(f[0] - unb[0]).abs().max().item():.2e}")
    except ImportError:
        print("skip  faiss not installed: no CPU comparison")
    # exactly representable tie-heavy inputs: the tie rule, blocked and unblocked, against float64 brute force
    rng = np.random.default_rng(0)
    base = rng.integers(-1, 2, size=(6, 64)).astype(np.float32) / 8
    ttr = base[rng.integers(0, 6, 3000)]
    tte = base[rng.integers(0, 6, 200)]
    s = tte.astype(np.float64) @ ttr.astype(np.float64).T
    for kk in (5, 100, 700):
        order = np.stack([np.lexsort((np.arange(3000), -row))[:kk] for row in s])
        ref = (torch.from_numpy(np.take_along_axis(s, order, 1).astype(np.float32)), torch.from_numpy(order))
        for budget in (1 << 50, 1):
            got = knn_search(torch.from_numpy(ttr).to(device), torch.from_numpy(tte).to(device), kk, backend="torch",
                             max_block_bytes=budget)
            ok, detail = same(got, ref)
            check(f"tie rule on {device}, k={kk}, {'unblocked' if budget > 1 else 'blocked'}", ok, detail)
    # vote forms with device-resident features
    g = torch.Generator(device=device).manual_seed(2)
    centres = torch.randn(12, 64, device=device, generator=g)
    ytr = torch.randint(0, 12, (3000,), device=device, generator=g)
    yte = torch.randint(0, 12, (500,), device=device, generator=g)
    xt = centres[ytr] + 0.8 * torch.randn(3000, 64, device=device, generator=g)
    xe = centres[yte] + 0.8 * torch.randn(500, 64, device=device, generator=g)
    for t, form in ((0.07, "official"), (0.005, "shifted")):
        r = knn_classify(xt, ytr, xe, yte, [20], t, 12, backend="torch")
        check(f"vote T={t} on {device}: form {form}, accuracy far above chance", r.vote[20] == form and r.top1[20] > 50,
              f"form {r.vote[20]}, top-1 {r.top1[20]:.1f}%, search on {r.search.get('device')}")


def fmow(device: str, quick: bool, dims: list[int]) -> list[list]:
    n_train, n_query, k = (20_000, 2_000, 200) if quick else (363_000, 53_000, 200)
    rows = []
    knn_search(features(2048, 64, 9, device), features(64, 64, 9, device), 10, backend="torch")  # warm-up
    for d in dims:
        xtr, xq = features(n_train, d, 0, device), features(n_query, d, 1, device)
        results = {}
        small = 16 if quick else 256
        for label, budget in (("default budget", None), (f"{small} MiB budget", small << 20)):
            if device.startswith("cuda"):
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
            info: dict = {}
            t = time.perf_counter()
            results[label] = knn_search(xtr, xq, k, backend="torch", max_block_bytes=budget, info=info)
            sync(device)
            sec = time.perf_counter() - t
            peak = (torch.cuda.max_memory_allocated() - base) / 2**30 if device.startswith("cuda") else math.nan
            rows.append([d, label, f"{info['block_bytes'] / 2**20:.0f} MiB", f"{info['query_block']} x {info['train_block']}",
                         info["blocks"], f"{sec:.2f}", f"{peak:.2f}", f"{base / 2**30:.2f}" if device.startswith("cuda") else "-"])
        ok, detail = same(results["default budget"], results[f"{small} MiB budget"])
        check(f"{'small' if quick else 'fMoW'}-sized d={d} on {device}: {small} MiB blocked == default", ok, detail)
        del xtr, xq, results
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (runs on a CPU in a few minutes)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dims", type=int, nargs="+", default=[384, 1024])
    a = ap.parse_args()
    from tabulate import tabulate

    t0 = time.perf_counter()
    if a.device.startswith("cuda"):
        print(f"{torch.cuda.get_device_name()}; torch {torch.__version__}; matmul TF32 allowed: "
              f"{torch.backends.cuda.matmul.allow_tf32}; free {torch.cuda.mem_get_info()[0] / 2**30:.0f} GiB")
    else:
        print(f"device {a.device}; torch {torch.__version__}; {torch.get_num_threads()} threads")
    equality(a.device, a.quick)
    rows = fmow(a.device, a.quick, a.dims)
    n = "20,000 x 2,000" if a.quick else "363,000 train x 53,000 queries"
    print(f"\nexact torch kNN search on {a.device}, {n}, k = 200, features resident on the device")
    print(tabulate(rows, headers=["dim", "run", "budget", "query x train block", "blocks", "seconds",
                                  "peak GPU GiB above inputs", "inputs GiB"]))
    print(f"\n{len(FAILED)} check(s) failed{': ' + ', '.join(FAILED) if FAILED else ''}; total {time.perf_counter() - t0:.0f} s")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
