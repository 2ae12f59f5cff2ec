"""Hand-written leaderboard records shared by the leaderboard tests (fixtures in tests/fixtures/leaderboard)."""

from __future__ import annotations

from satbench.config.protocols import load_protocol
from satbench.records.results import make_record

from .paths import LEADERBOARD_FIXTURES

RECORDS = LEADERBOARD_FIXTURES / "records"

W = {"source": "file", "sha256": "ab" * 32, "path": "/w.pth", "kind": "pretrain", "seed": None}
RANDOM = {"source": "random", "sha256": None, "path": None, "kind": "random", "seed": 0}


def knn_record(model="satdino-vit_small-16", ds="eurosat", avg=85.50, *, weights=W, date="2026-11-20T10:00:00",
               overrides=None, protocol="satdino-knn-v1", dataset=None):
    proto = load_protocol(protocol)
    if overrides:
        proto = proto.with_overrides(**overrides)
    dataset = dataset or {"name": ds, "protocol_dataset": ds, "official_split": {"train": "exact", "val": "exact"}}
    k = proto.get("k_report")
    rec = make_record(task="knn", model=model, weights=weights, protocol=proto.as_record(), dataset=dataset,
                      metrics={"k": proto.get("k"), "k_report": k},
                      summary={"top1_avg": avg, "top1_per_scale": {"1.0": avg + 1, "0.5": avg - 1}, "k": k})
    rec["provenance"]["date"] = date
    return rec


def seg_record(miou=68.0, *, iters=80000, train_equals_val=None, crop=512, kind="vaihingen", params=None):
    p = {"crop": crop, "iters": iters, "frozen": False, "layer_decay": None, "cfg_options": {}, **(params or {})}
    ds = {"name": kind}
    if train_equals_val is not None:
        ds["train_equals_val"] = train_equals_val
    return make_record(task="segmentation", model="satdino-vit_small-16", weights=W,
                       protocol={"name": f"upernet_{kind}_{crop}", "task": "segmentation", "params": p, "hash": "s" * 64},
                       dataset=ds, metrics={}, summary={"mIoU": miou, "crop": crop})
