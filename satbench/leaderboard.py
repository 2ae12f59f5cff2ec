"""Leaderboard: result records + the papers' reference numbers -> the papers' tables (md / csv / html) and plots.

Layouts follow the SatDINO README: kNN, fine-tuning and linear tables are datasets x models (kNN: mean top-1 over scales
at the protocol's reported k); segmentation is models x (dataset, crop). Reference rows come from
``results/reference/*.json``. A run shows its delta to a reference only when the comparison is like for like: the same
model (the reference's ``match`` regex), non-random weights, the reference's protocol without overrides (kNN), and the
full dataset with the official split (a bundled subset such as ``ucm-mini`` never gets a delta). Of several runs of the
same (model, weights, protocol, dataset) the latest is shown, marked ``*`` with the run count in the notes.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from .errors import ResultsError
from .resources import reference_dir

TASKS = ("knn", "linear", "finetune", "segmentation")
FORMATS = ("md", "csv", "html")
DATASET_ORDER = ["eurosat", "resisc45", "uc_merced", "whu-rs19", "rs_c11", "siri-whu", "fmow", "potsdam", "vaihingen", "loveda"]
DATASET_LABELS = {"eurosat": "EuroSAT", "resisc45": "RESISC45", "uc_merced": "UC Merced", "whu-rs19": "WHU-RS19",
                  "rs_c11": "RS-C11", "siri-whu": "SIRI-WHU", "fmow": "fMoW-RGB", "potsdam": "Potsdam",
                  "vaihingen": "Vaihingen", "loveda": "LoveDA"}


@dataclass
class Table:
    """A rendered-agnostic table: title, headers, rows and footnotes."""

    title: str
    headers: list[str]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------------------------------
# References
# ----------------------------------------------------------------------------------------------------------------------
def load_references(folder: Optional[Path] = None) -> list[dict[str, Any]]:
    """Every ``*.json`` reference file (with its ``_name``), sorted by file name."""
    folder = Path(folder) if folder is not None else reference_dir()
    out = []
    for p in sorted(folder.glob("*.json")):
        try:
            ref = json.loads(p.read_text())
        except (json.JSONDecodeError, OSError) as exc:
            raise ResultsError(f"reference file {p} is not readable JSON ({exc})") from None
        if not isinstance(ref, dict) or "models" not in ref:
            raise ResultsError(f"reference file {p} must be a mapping with 'models' and tables")
        ref["_name"] = p.stem
        out.append(ref)
    return out


def ref_key(ref: dict[str, Any], model: str) -> Optional[str]:
    """The reference model key whose ``match`` regex matches the satbench model name."""
    for key, m in ref["models"].items():
        if re.search(m.get("match", f"^{re.escape(key)}$"), model):
            return key
    return None


# ----------------------------------------------------------------------------------------------------------------------
# Runs
# ----------------------------------------------------------------------------------------------------------------------
def weights_tag(rec: dict[str, Any]) -> str:
    w = rec.get("weights", {})
    if w.get("source") == "random":
        return f"random-seed{w.get('seed')}"
    return (w.get("sha256") or w.get("path") or "?")[:12]


def run_key(rec: dict[str, Any]) -> tuple:
    p = rec.get("protocol", {})
    return (rec["model"], weights_tag(rec), p.get("name", ""), p.get("hash", ""), rec["dataset"].get("name", ""))


def latest_runs(records: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """``(latest record, number of runs)`` per (model, weights, protocol hash, dataset); records are oldest first."""
    groups: "OrderedDict[tuple, list[dict[str, Any]]]" = OrderedDict()
    for r in sorted(records, key=lambda r: r.get("provenance", {}).get("date", "")):
        groups.setdefault(run_key(r), []).append(r)
    return [(g[-1], len(g)) for g in groups.values()]


def protocol_dataset(rec: dict[str, Any]) -> str:
    d = rec["dataset"]
    return d.get("protocol_dataset") or d.get("name", "")


def is_subset(rec: dict[str, Any]) -> bool:
    d = rec["dataset"]
    if "is_subset" in d:
        return bool(d["is_subset"])
    return d.get("name") == "ucm-mini" or d.get("name") != protocol_dataset(rec)  # records written before is_subset


def comparable(rec: dict[str, Any], ref_protocol: Optional[str]) -> bool:
    """Whether a run may be compared to a paper number (see the module docstring)."""
    if rec.get("weights", {}).get("source") == "random" or is_subset(rec):
        return False
    official = rec["dataset"].get("official_split")
    if isinstance(official, dict) and not all(v in ("exact", "modulo-extension") for v in official.values()):
        return False
    p = rec.get("protocol", {})
    if ref_protocol is not None and (p.get("name") != ref_protocol or p.get("overrides")):
        return False
    return True


def variant_label(rec: dict[str, Any], default_protocol: Optional[str]) -> str:
    p = rec.get("protocol", {})
    label = f"{rec['model']} [{weights_tag(rec)}]"
    if p.get("name") and p.get("name") != default_protocol:
        label += f" {p['name']}"
    if p.get("overrides"):
        label += " (" + ", ".join(f"{k}={v}" for k, v in p["overrides"].items()) + f") #{p.get('hash', '')[:6]}"
    return label


def _fmt(v: Optional[float]) -> str:
    return "" if v is None else f"{v:.2f}"


def _ds_sort(name: str) -> tuple:
    return (DATASET_ORDER.index(name) if name in DATASET_ORDER else len(DATASET_ORDER), name)


def _ds_label(rec_or_name: Any) -> str:
    if isinstance(rec_or_name, str):
        return DATASET_LABELS.get(rec_or_name, rec_or_name)
    name, pd = rec_or_name["dataset"].get("name", ""), protocol_dataset(rec_or_name)
    if is_subset(rec_or_name):
        return f"{name} (subset of {DATASET_LABELS.get(pd, pd)})"
    return DATASET_LABELS.get(name, name)


# ----------------------------------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------------------------------
def classification_table(records: list[dict[str, Any]], task: str, refs: list[dict[str, Any]],
                         value: Callable[[dict[str, Any]], Optional[float]], title: str,
                         default_protocol: Optional[str] = None) -> Table:
    """Datasets x models with reference rows ("paper: <source>") and run rows (value and delta)."""
    runs = latest_runs([r for r in records if r.get("task") == task])
    ref_tables = [(ref, ref[task]) for ref in refs if task in ref]
    columns: "OrderedDict[str, dict[str, Any]]" = OrderedDict()  # label -> {"model": name or None, "ref": (file, key)}
    for rec, _ in runs:
        columns.setdefault(variant_label(rec, default_protocol), {"model": rec["model"]})
    for ref, _ in ref_tables[:1]:  # the primary reference's models get a column even without runs
        for key, m in ref["models"].items():
            if not any(c["model"] and ref_key(ref, c["model"]) == key for c in columns.values()):
                if any(key in vals for vals in ref[task].get("values", {}).values()):
                    columns[f"{m['label']} (paper)"] = {"model": None, "ref_key": key, "ref": ref["_name"]}
    datasets = sorted({r["dataset"].get("name", "") for r, _ in runs} |
                      {d for _, t in ref_tables for d in t.get("values", {})}, key=_ds_sort)
    rows, notes = [], []
    for ds in datasets:
        for ref, t in ref_tables:
            vals = t.get("values", {}).get(ds)
            if not vals:
                continue
            row = [f"{_ds_label(ds)}", f"paper: {ref['_name']}"]
            for label, c in columns.items():
                key = ref_key(ref, c["model"]) if c["model"] else (c["ref_key"] if c["ref_key"] in ref["models"] else None)
                row.append(_fmt(vals.get(key)) if key else "")
            rows.append(row)
        ds_runs = [(r, n) for r, n in runs if r["dataset"].get("name", "") == ds]
        if not ds_runs:
            continue
        row = [_ds_label(ds_runs[0][0]), "satbench"]
        for label, c in columns.items():
            cell = ""
            for rec, n in ds_runs:
                if variant_label(rec, default_protocol) != label:
                    continue
                v = value(rec)
                cell = _fmt(v) + ("*" if n > 1 else "")
                if n > 1:
                    notes.append(f"* {label} on {ds}: latest of {n} runs ({rec['provenance'].get('date', '')})")
                for ref, t in ref_tables:
                    key = ref_key(ref, rec["model"])
                    paper = t.get("values", {}).get(protocol_dataset(rec), {}).get(key) if key else None
                    if v is not None and paper is not None and comparable(rec, t.get("protocol")):
                        cell += f" ({v - paper:+.2f})"
                        break
            row.append(cell)
        rows.append(row)
    if any(is_subset(r) for r, _ in runs):
        notes.append("subset datasets (e.g. ucm-mini) are not comparable to the papers: no delta")
    if any(r.get("weights", {}).get("source") == "random" for r, _ in runs):
        notes.append("random-weight runs get no delta to the papers")
    return Table(title, ["dataset", "source"] + list(columns), rows, notes)


def segmentation_table(records: list[dict[str, Any]], refs: list[dict[str, Any]]) -> Table:
    """Models x (dataset, crop) mIoU, paper rows first (the SatDINO README's segmentation table)."""
    runs = latest_runs([r for r in records if r.get("task") == "segmentation"])
    ref_tables = [(ref, ref["segmentation"]) for ref in refs if "segmentation" in ref]
    cols: set[tuple[str, str]] = set()
    for _, t in ref_tables:
        for ds, crops in t.get("values", {}).items():
            cols |= {(ds, c) for c in crops}
    for r, _ in runs:
        cols.add((protocol_dataset(r), str(r.get("summary", {}).get("crop", ""))))
    columns = sorted(cols, key=lambda dc: (_ds_sort(dc[0]), int(dc[1]) if dc[1].isdigit() else 0))
    rows, notes = [], []
    for ref, t in ref_tables:
        for key, m in ref["models"].items():
            vals = [t["values"].get(ds, {}).get(c, {}).get(key) for ds, c in columns]
            if any(v is not None for v in vals):
                rows.append([m["label"], f"paper: {ref['_name']}"] + [_fmt(v) for v in vals])
    variants: "OrderedDict[str, dict[tuple[str, str], tuple[dict[str, Any], int]]]" = OrderedDict()
    for r, n in runs:
        variants.setdefault(variant_label(r, None), {})[(protocol_dataset(r), str(r["summary"].get("crop", "")))] = (r, n)
    for label, cells in variants.items():
        row = [label, "satbench"]
        for ds, c in columns:
            if (ds, c) not in cells:
                row.append("")
                continue
            r, n = cells[(ds, c)]
            v = r["summary"].get("mIoU")
            cell = _fmt(v) + ("*" if n > 1 else "")
            for ref, t in ref_tables:
                key = ref_key(ref, r["model"])
                paper = t.get("values", {}).get(ds, {}).get(c, {}).get(key) if key else None
                if v is not None and paper is not None and comparable(r, None):
                    cell += f" ({v - paper:+.2f})"
                    break
            if n > 1:
                notes.append(f"* {label} on {ds} {c}: latest of {n} runs")
            row.append(cell)
        rows.append(row)
    headers = ["model", "source"] + [f"{_ds_label(ds)} {c}" for ds, c in columns]
    return Table("Segmentation mIoU (%)", headers, rows, notes)


def knn_scale_table(records: list[dict[str, Any]]) -> Table:
    """Per-scale top-1 of the latest kNN runs (the paper has no per-scale numbers)."""
    runs = latest_runs([r for r in records if r.get("task") == "knn"])
    scales = sorted({s for r, _ in runs for s in r.get("summary", {}).get("top1_per_scale", {})}, key=float, reverse=True)
    rows = []
    for r, n in sorted(runs, key=lambda x: (_ds_sort(x[0]["dataset"].get("name", "")), x[0]["model"])):
        per = r["summary"].get("top1_per_scale", {})
        rows.append([_ds_label(r), variant_label(r, "satdino-knn-v1"), r["protocol"].get("hash", "")[:12]] +
                    [_fmt(per.get(s)) for s in scales] + [_fmt(r["summary"].get("top1_avg")), n])
    return Table("kNN top-1 (%) per scale (latest run of each model / weights / protocol / dataset)",
                 ["dataset", "model [weights]", "protocol hash"] + [f"scale {s}" for s in scales] + ["average", "runs"], rows)


def build_tables(records: list[dict[str, Any]], task: Optional[str] = None,
                 refs: Optional[list[dict[str, Any]]] = None) -> list[Table]:
    """The leaderboard tables for ``task`` (or every task)."""
    if task is not None and task not in TASKS:
        raise ResultsError(f"unknown leaderboard task {task!r}; expected one of {', '.join(TASKS)}")
    refs = refs if refs is not None else load_references()
    out = []
    if task in (None, "knn"):
        knn_refs = [r for r in refs if "knn" in r]
        out.append(classification_table(records, "knn", knn_refs, lambda r: r.get("summary", {}).get("top1_avg"),
                                        "kNN: mean top-1 (%) over scales, k=20", default_protocol="satdino-knn-v1"))
        if any(r.get("task") == "knn" for r in records):
            out.append(knn_scale_table(records))
    if task in (None, "finetune"):
        out.append(classification_table(records, "finetune", refs, lambda r: r.get("summary", {}).get("top1"),
                                        "Fine-tuning top-1 (%)"))
    if task in (None, "linear"):
        out.append(classification_table(records, "linear", refs, lambda r: r.get("summary", {}).get("top1"),
                                        "Linear probe top-1 (%)"))
    if task in (None, "segmentation"):
        out.append(segmentation_table(records, refs))
    return out


def render(table: Table, fmt: str = "md") -> str:
    """A table as GitHub markdown, CSV (pandas) or HTML."""
    if fmt == "csv":
        import pandas as pd

        return pd.DataFrame(table.rows, columns=table.headers).to_csv(index=False)
    from tabulate import tabulate

    if fmt == "html":
        notes = "".join(f"<p>{n}</p>" for n in table.notes)
        return f"<h3>{table.title}</h3>\n" + tabulate(table.rows, headers=table.headers, tablefmt="html") + notes + "\n"
    if fmt != "md":
        raise ResultsError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    body = tabulate(table.rows, headers=table.headers, tablefmt="github", disable_numparse=True) if table.rows else "(no rows)"
    notes = "".join(f"\n{n}" for n in dict.fromkeys(table.notes))
    return f"### {table.title}\n\n{body}\n{notes}\n"


def plot_knn_scales(records: list[dict[str, Any]], path: str | Path) -> Optional[Path]:
    """PNG: top-1 vs. scale, one panel per dataset, one line per (model, weights, protocol) - latest runs."""
    runs = latest_runs([r for r in records if r.get("task") == "knn"])
    if not runs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = sorted({r["dataset"].get("name", "") for r, _ in runs}, key=_ds_sort)
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.6), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        for r, _ in runs:
            if r["dataset"].get("name", "") != ds:
                continue
            per = r["summary"].get("top1_per_scale", {})
            xs = sorted(per, key=float)
            ax.plot([float(x) for x in xs], [per[x] for x in xs], marker="o", label=variant_label(r, "satdino-knn-v1"))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("scale (fraction of native size)")
        ax.set_ylabel("kNN top-1 (%)")
        ax.set_title(_ds_label(ds))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from .io import atomic_write

    atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=110))
    plt.close(fig)
    return path
