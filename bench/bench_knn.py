"""End-to-end four-scale kNN on real images: satbench's engine vs a plain baseline written like the official script.

Baseline (as satdino/eval_knn.py): for every scale a fresh dataset pass (PIL decode each time), Resize+CenterCrop+ToTensor+
Normalize, batch 64, CLS features, L2-normalise, DINO's torch-matmul knn_classifier. satbench: run_knn (decode once for
all scales, batch by size, FAISS search, one search for all k) with a cold feature cache, then again warm.
Both use the same model (satdino-vit_small-16, random init: weights do not change speed) and the same images; the
table also checks that both give the same top-1.

Usage: python bench/bench_knn.py [--data /work/shared/data/uc_merced] [--workers 1]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

import torch
from tabulate import tabulate

from satbench.runtime.device import cpu_kind


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def baseline(loaded, ds, scales, ks, workers: int) -> tuple[float, dict]:
    """One pass per scale with a fresh decode, like the official knn_main (torch kNN)."""
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms as T

    from satbench.data.images import read_rgb
    from satbench.data.transforms import knn_input_size

    class Split(Dataset):
        def __init__(self, samples, tf):
            self.samples, self.tf = samples, tf

        def __len__(self):
            return len(self.samples)

        def __getitem__(self, i):
            return self.tf(read_rgb(self.samples[i].path)), self.samples[i].label

    norm = T.Normalize(ds.normalization.mean, ds.normalization.std)
    model = loaded.model.eval()
    out = {}
    t0 = time.perf_counter()
    for s in scales:
        _, size = knn_input_size(ds.native_size, s, 16)
        tf = T.Compose([T.Resize(round(size * 256 / 224), interpolation=T.InterpolationMode.BICUBIC),
                        T.CenterCrop(size), T.ToTensor(), norm])
        feats = {}
        for split in ("train", "val"):
            dl = DataLoader(Split(ds.samples(split), tf), batch_size=64, num_workers=workers)
            fs, ls = [], []
            with torch.inference_mode():
                for x, y in dl:
                    fs.append(model(x))
                    ls.append(y)
            feats[split] = (torch.nn.functional.normalize(torch.cat(fs), dim=1, p=2), torch.cat(ls))
        (xtr, ytr), (xte, yte) = feats["train"], feats["val"]
        for k in ks:
            out[(s, k)] = knn_classifier(xtr, ytr, xte, yte, k, 0.07, len(ds.classes))
    return time.perf_counter() - t0, out


def knn_classifier(train_features, train_labels, test_features, test_labels, k, T, num_classes):
    """DINO's knn_classifier (chunks of num_test // 100)."""
    top1, total = 0.0, 0
    train_features = train_features.t()
    n = test_labels.shape[0]
    step = max(1, n // 100)
    one_hot = torch.zeros(k, num_classes)
    for i in range(0, n, step):
        f, t = test_features[i:i + step], test_labels[i:i + step]
        b = t.shape[0]
        d, idx = torch.mm(f, train_features).topk(k, largest=True, sorted=True)
        retrieved = torch.gather(train_labels.view(1, -1).expand(b, -1), 1, idx)
        one_hot.resize_(b * k, num_classes).zero_()
        one_hot.scatter_(1, retrieved.view(-1, 1), 1)
        probs = torch.sum(torch.mul(one_hot.view(b, -1, num_classes), d.clone().div_(T).exp_().view(b, -1, 1)), 1)
        _, pred = probs.sort(1, True)
        top1 += pred.eq(t.view(-1, 1))[:, :1].sum().item()
        total += b
    return top1 * 100.0 / total


def subset_folder(src: str, per_class: int) -> str:
    """An official-layout folder named like the source (so its protocol facts apply) with symlinks to a per-class subset."""
    import collections
    import os
    from pathlib import Path

    src_p = Path(src).resolve()
    dst = Path(tempfile.mkdtemp(prefix="bench_knn_")) / src_p.name
    for split, n in (("train", per_class), ("val", max(1, per_class // 4))):
        taken, lines = collections.Counter(), []
        for line in (src_p / f"{split}.txt").read_text().split():
            cls = line.split("/")[-2]
            if taken[cls] < n:
                taken[cls] += 1
                lines.append(line)
                target = dst / "images" / line[2:]
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(src_p / "images" / line[2:], target)
        (dst / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return str(dst)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/uc_merced")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--per-class", type=int, default=0,
                    help="use only the first N train and N/4 val entries per class of the split files (0 = all); the "
                         "subset is a folder of symlinks to the same real images, laid out officially")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from satbench.eval.cache import FeatureCache
    from satbench.data.scene import open_scene_dataset
    from satbench.eval.task_knn import run_knn
    from satbench.config.protocols import load_protocol
    from satbench.models.registry import get_card
    from satbench.models.weights import load_model

    data = args.data
    if args.per_class:
        data = subset_folder(args.data, args.per_class)
    ds = open_scene_dataset(data)
    proto = load_protocol("satdino-knn-v1")
    scales, ks = proto.get("scales"), proto.get("k")
    loaded = load_model(get_card("satdino-vit_small-16"), "random", seed=0)
    n = len(ds.samples("train")) + len(ds.samples("val"))
    rows = []
    t_base, base = baseline(loaded, ds, scales, ks, args.workers)
    rows.append(["baseline: pass per scale, PIL decode each time, torch kNN", f"{t_base:.1f}", f"{4 * n / t_base:.1f}",
                 f"{rss_mb():.0f}", "1.00x"])
    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(tmp)
        t = time.perf_counter()
        rec = run_knn(loaded, ds, proto, device="cpu", cache=cache, progress=False, num_workers=args.workers)
        t_cold = time.perf_counter() - t
        rows.append(["satbench run_knn, cold cache (decode once, FAISS)", f"{t_cold:.1f}", f"{4 * n / t_cold:.1f}",
                     f"{rss_mb():.0f}", f"{t_base / t_cold:.2f}x"])
        t = time.perf_counter()
        rec2 = run_knn(loaded, ds, proto, device="cpu", cache=cache, progress=False, num_workers=args.workers)
        t_warm = time.perf_counter() - t
        rows.append(["satbench run_knn, warm cache", f"{t_warm:.2f}", "-", f"{rss_mb():.0f}", f"{t_base / t_warm:.0f}x"])
    print(f"{n} images ({ds.root}), 4 scales {scales}, k {ks}, satdino-vit_small-16 random, "
          f"{args.threads} threads, {args.workers} decode worker(s)")
    print(f"CPU: {cpu_kind()}")
    print(tabulate(rows, headers=["method", "seconds", "image-views/s", "peak RSS MB", "speed-up"]))
    ours = {(e["scale"], k): e["k"][str(k)]["top1"] for e in rec["metrics"]["per_scale"] for k in ks}
    diff = max(abs(ours[key] - base[key]) for key in base)
    print(f"top-1 k=20 per scale (satbench / baseline): " + ", ".join(
        f"{s}: {ours[(s, 20)]:.2f}/{base[(s, 20)]:.2f}" for s in scales) + f"; max |diff| over all k = {diff:.4f}")
    print(f"warm re-run identical: {rec2['summary'] == rec['summary']}; extract {rec['timings']['extract_s']} s, "
          f"search {rec['timings']['search_s']} s")


if __name__ == "__main__":
    main()
