"""``satbench results ls|show|diff``: list records, show one with its provenance, and say what differs between two
(protocol keys, split hashes, weights, transforms, commit): the field's most common question, "why do these two
numbers differ?". Every string from a record is printed through :func:`satbench.leaderboard.escape.plain`."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Optional

# The sections ``diff`` compares, in the order a reader should look at them (what changes numbers first).
from satbench.records.diff import DIFF_SECTIONS, diff_records, flatten  # noqa: F401 (re-exported)
DIFF_ALL_SECTIONS = DIFF_SECTIONS + ("summary", "metrics", "timings", "extra", "predictions")
_MAX_CELL = 72


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("results", help="list result records, show one, or diff two (what differs and why)",
                       description="Explore result records: `ls` lists them (date, task, model, weights, dataset, "
                                   "headline), `show RECORD` prints one with its provenance and whether it is comparable "
                                   "to a paper, `diff A B` lists what differs between two records' protocols, splits, "
                                   "weights, transforms and provenance. RECORD: a record file, its id (or a unique id "
                                   "prefix) or its file name in --results-dir.")
    p.add_argument("--results-dir", default=None, help="records folder (default $SATBENCH_RESULTS or ./results/runs)")
    rsub = p.add_subparsers(dest="results_command", metavar="ls|show|diff")
    ls = rsub.add_parser("ls", help="one line per record, oldest first")
    ls.add_argument("--task", default=None, help="only records of this task")
    ls.add_argument("--model", default=None, help="only models whose name contains this text")
    ls.add_argument("--dataset", default=None, help="only datasets whose name contains this text")
    ls.set_defaults(func=_ls)
    _dir_option(ls)
    show = rsub.add_parser("show", help="one record with its provenance")
    show.add_argument("record", help="record file, id, id prefix or file name")
    show.set_defaults(func=_show)
    _dir_option(show)
    diff = rsub.add_parser("diff", help="what differs between two records")
    diff.add_argument("a", help="record file, id, id prefix or file name")
    diff.add_argument("b", help="record file, id, id prefix or file name")
    diff.add_argument("--all", action="store_true", help="also compare summary, metrics, timings and extra")
    diff.set_defaults(func=_diff)
    _dir_option(diff)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _dir_option(p: argparse.ArgumentParser) -> None:
    """``--results-dir`` also after the sub-command (without overriding one given before it)."""
    p.add_argument("--results-dir", default=argparse.SUPPRESS, help="records folder (as before the sub-command)")


# ----------------------------------------------------------------------------------------------------------------------
# Finding records
# ----------------------------------------------------------------------------------------------------------------------
def _folder(args: argparse.Namespace) -> Path:
    from satbench.errors import DataError
    from satbench.records.results import default_results_dir

    folder = Path(args.results_dir) if args.results_dir else default_results_dir()
    if args.results_dir and not folder.is_dir():
        raise DataError(f"--results-dir {folder}: no such folder")
    return folder


def read_record_file(path: Path) -> dict[str, Any]:
    """One record file named by the user (``_path`` set), read as every record is (:func:`satbench.records.results.read_record`:
    bounded, regular files only); anything that is not a satbench record is an error naming the file."""
    from satbench.records.results import read_record

    return read_record(path, follow_symlinks=True)


def find_record(spec: str, folder: Path) -> dict[str, Any]:
    """A record by file path, id, file name, or a unique prefix (>= 4 characters) of its id or of its file name (the
    date and time ``results ls`` shows, e.g. ``20261120T1015``) in ``folder``."""
    from satbench.errors import ResultsError
    from satbench.records.results import read_records

    path = Path(spec)
    if os.path.lexists(path) and not path.is_dir():  # a FIFO or device is named as such, never opened
        return read_record_file(path)
    records = read_records(folder)
    exact = [r for r in records if spec in (str(r.get("id")), Path(r["_path"]).name, Path(r["_path"]).stem)]
    hits = exact or ([r for r in records if len(spec) >= 4 and (str(r.get("id", "")).startswith(spec) or
                                                               Path(r["_path"]).name.startswith(spec))])
    if not hits:
        raise ResultsError(f"no record {spec!r}: not a file, and no record in {folder} has that id, file name or prefix "
                           f"(`satbench results ls` lists them)")
    if len(hits) > 1:
        names = ", ".join(Path(r["_path"]).name for r in hits[:4])
        raise ResultsError(f"{spec!r} matches {len(hits)} records in {folder} ({names}{', ...' if len(hits) > 4 else ''}); "
                           f"give more of the id or the file")
    return hits[0]


def headline(rec: dict[str, Any]) -> str:
    """``top1_avg 85.50`` (the task's headline metric from the leaderboard's task table), with its interval."""
    from satbench.leaderboard import runs as R
    from satbench.leaderboard import spec_for_record

    spec = spec_for_record(rec)
    if spec is None:
        return ""
    v = spec.value(rec)
    if v is None:
        return ""
    ci = R.interval(rec, spec.metric)
    return f"{spec.metric} {v:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


# ----------------------------------------------------------------------------------------------------------------------
# ls / show
# ----------------------------------------------------------------------------------------------------------------------
def _ls(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from satbench.leaderboard import runs as R
    from satbench.leaderboard.escape import plain
    from satbench.leaderboard.layout import record_settings
    from satbench.records.results import read_records

    from satbench.records.fingerprints import clash_lines, clashes

    folder = _folder(args)
    rows = []
    records = read_records(folder)
    for line in clash_lines(clashes(records)):
        print(plain(f"satbench: warning: {line}"), file=sys.stderr)
    for rec in records:
        model, ds = R.text(rec, "model"), R.text(rec, "dataset", "name")
        if args.task and rec.get("task") != args.task:
            continue
        if (args.model and args.model not in model) or (args.dataset and args.dataset not in ds):
            continue
        rows.append([R.text(rec, "provenance", "date")[:19].replace("T", " "), R.text(rec, "id"), R.text(rec, "task"),
                     model, R.weights_label(rec).replace("weights ", ""), ds, R.protocol_name(rec),
                     "; ".join(record_settings(rec)), headline(rec), Path(rec["_path"]).name])
    if not rows:
        filtered = args.task or args.model or args.dataset
        print(plain(f"no records in {folder}" + (" matching the filters" if filtered else "")))
        return 0
    print(tabulate([[plain(c) for c in r] for r in rows], disable_numparse=True, tablefmt="simple",
                   headers=["date", "id", "task", "model", "weights", "dataset", "protocol", "settings", "headline",
                            "file"]))
    return 0


def short(v: Any, limit: int = _MAX_CELL) -> str:
    """A value as one short line (long lists and strings shortened, with their length)."""
    from satbench.leaderboard.escape import plain

    if isinstance(v, list) and len(v) > 8:
        text = json.dumps(v[:4], default=str)[:-1] + f", ... ({len(v)} items)]"
    elif isinstance(v, (list, dict)):
        text = json.dumps(v, default=str)
    elif v is None:
        text = "-"
    elif isinstance(v, str) and re.fullmatch(r"[0-9a-f]{40,}", v) and limit < 80:
        text = v[:10] + "..." + v[-6:]  # a sha256 / commit: both ends tell two apart
    else:
        text = str(v)
    text = plain(text)
    return text if len(text) <= limit else text[: limit - 12] + f"... ({len(text)} ch)"


def _section_rows(rec: dict[str, Any], key: str, skip: Iterable[str] = ()) -> list[list[str]]:
    v = rec.get(key)
    flat = flatten(v, key) if isinstance(v, dict) else {key: v}
    return [[k, short(x)] for k, x in flat.items() if not any(k.startswith(s) for s in skip)]


def _show(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from satbench.leaderboard import build_tables, load_references
    from satbench.leaderboard import runs as R
    from satbench.leaderboard.escape import plain

    rec = find_record(args.record, _folder(args))
    print(plain(f"{rec['_path']}"))
    print(plain(f"{R.text(rec, 'task')} · {R.text(rec, 'model')} · {R.weights_label(rec)} · {R.protocol_name(rec)} · "
                f"{R.text(rec, 'dataset', 'name')}: {headline(rec) or 'no headline number'}"))
    verdict = _verdict(rec, build_tables, load_references)
    if verdict:
        print(plain(f"vs paper: {verdict}"))
    from satbench.leaderboard.layout import record_settings

    settings = record_settings(rec)
    if settings:
        print(plain("settings different from the protocol's defaults: " + "; ".join(settings)))
    from satbench.stats.formatting import calibration_line

    summary = rec.get("summary") if isinstance(rec.get("summary"), dict) else {}
    calib = calibration_line(summary)
    if calib:
        print(plain(calib))
    for title, key, skip in (("weights", "weights", ()), ("protocol", "protocol", ("protocol.content.description",)),
                             ("dataset", "dataset", ()), ("summary", "summary", ()), ("extractor", "extractor", ()),
                             ("provenance", "provenance", ()), ("timings", "timings", ()),
                             ("predictions", "predictions", ())):
        if rec.get(key) in (None, {}, []):
            continue
        print(f"\n[{title}]")
        print(tabulate(_section_rows(rec, key, skip), tablefmt="plain", disable_numparse=True))
    return 0


def _verdict(rec: dict[str, Any], build_tables, load_references) -> Optional[str]:
    """The leaderboard's own verdict on this record: ``like for like (delta -0.46 to 85.96)`` or its exclusions."""
    from satbench.leaderboard.layout import table_for_record

    key = table_for_record(rec)
    if key is None:
        return None
    # the table of the record's protocol family and dataset kind (the family's other tables hold no run of it)
    run = next((r for t in build_tables([rec], key, load_references()) for r in t.rows if r.kind == "run"), None)
    if run is None:
        return None
    cell = next(iter(run.cells.values()), None)
    text = run.labels.get("vs", "")
    if cell is not None and cell.delta is not None:
        text += f" (delta {cell.delta:+.2f} to the paper's {cell.paper:.2f})"
    return text


# ----------------------------------------------------------------------------------------------------------------------
# diff
# ----------------------------------------------------------------------------------------------------------------------
def _shown(va: Any, vb: Any) -> tuple[str, str]:
    """Both sides of a difference; two long lists of one length show only the differing positions."""
    if isinstance(va, list) and isinstance(vb, list) and len(va) == len(vb) and len(va) > 8:
        idx = [i for i, (x, y) in enumerate(zip(va, vb)) if x != y]
        return (short({f"[{i}]": va[i] for i in idx}, 56), short({f"[{i}]": vb[i] for i in idx}, 56))
    return short(va, 56), short(vb, 56)


def _diff(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from satbench.leaderboard.escape import plain

    folder = _folder(args)
    a, b = find_record(args.a, folder), find_record(args.b, folder)
    print(plain(f"A: {a['_path']}  ({a.get('id')}, {headline(a) or 'no headline'})"))
    print(plain(f"B: {b['_path']}  ({b.get('id')}, {headline(b) or 'no headline'})"))
    rows = diff_records(a, b, DIFF_ALL_SECTIONS if args.all else DIFF_SECTIONS)
    if not rows:
        print("no differences in " + ", ".join(DIFF_ALL_SECTIONS if args.all else DIFF_SECTIONS))
        return 0
    groups: dict[str, int] = {}
    for k, _, _ in rows:
        groups[k.split(".")[0]] = groups.get(k.split(".")[0], 0) + 1
    print(plain(f"{len(rows)} differences: " + ", ".join(f"{g} {n}" for g, n in groups.items())))
    print(tabulate([[plain(k), *_shown(va, vb)] for k, va, vb in rows], headers=["key", "A", "B"],
                   tablefmt="simple", disable_numparse=True))
    return 0
