"""The walk of a dataset through a task: which satbench files a run enters with the dataset object in hand, and how
often that walk climbs back up the layering (issue 25's "16 files / 12 climbs" figure for KnnTask.run).

Method: ``sys.setprofile`` during ``satbench.run(task, ...)`` on a small real scene folder; a *dataset call* is a call
of a satbench function one of whose arguments is the opened dataset. Files entered = distinct files of those calls.
A climb = a dataset call made from a file in a lower room into a file of a higher room (rooms ordered by the
allowed-imports table of docs/architecture.md: a room's level is one more than the highest room it may import): the
walk went down and had to call back up (a callback). Same-room hops (knn_run -> knn_protocols) are entered files, not
climbs. Prints one table for kNN, cached-linear and the linear probe.

    python bench/bench_walk.py            # tiny random SatDINO, 5 classes of ucm-mini
"""

from __future__ import annotations

import sys
import tempfile
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


@lru_cache(None)
def levels() -> dict[str, int]:
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    from test_import_graph import allowed_imports  # the one reading of the table

    allowed = allowed_imports(ROOT / "docs" / "architecture.md")
    out: dict[str, int] = {}

    def lvl(room: str, seen: tuple = ()) -> int:
        if room not in out:
            below = [r for r in allowed.get(room, ()) if r != room and r not in seen and r != "cli"]
            out[room] = 1 + max((lvl(r, seen + (room,)) for r in below), default=-1)
        return out[room]

    for r in allowed:
        lvl(r)
    out[""] = max(out.values()) + 1  # satbench/api.py, __init__.py: the public API sits on top of every room
    return out


def room_of(path: str) -> str:
    rel = Path(path).resolve().relative_to(ROOT / "satbench").parts
    return rel[0].removesuffix(".py") if len(rel) > 1 else ""


def walk(task: str, dataset_root: Path, model) -> tuple[list[str], int]:
    import satbench
    from satbench.data.datasets import open_dataset

    ds = open_dataset(str(dataset_root))
    pkg = str(ROOT / "satbench")
    calls: list[str] = []

    def prof(frame, event, arg):
        if event != "call" or not frame.f_code.co_filename.startswith(pkg):
            return
        code = frame.f_code
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        if any(frame.f_locals.get(n) is ds for n in names):
            calls.append((frame.f_back.f_code.co_filename if frame.f_back else "", code.co_filename))

    sys.setprofile(prof)
    try:
        satbench.run(task, model=model, dataset=ds, write=False, progress=False, resamples=100,
                     **({"epochs": 1} if task == "linear" else {}))
    finally:
        sys.setprofile(None)
    lv = levels()
    climbs = sum(1 for caller, callee in calls if caller.startswith(pkg)
                 and lv.get(room_of(callee), 0) > lv.get(room_of(caller), 0))
    return sorted({str(Path(c).relative_to(ROOT)) for _, c in calls}), climbs


def main() -> None:
    from tabulate import tabulate

    from satbench.data.scene import open_scene_dataset
    from support.builders import tiny_satdino
    from support.tiny_runs import small_scene_copy

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = small_scene_copy(Path(tmp), open_scene_dataset("ucm-mini"))
        model = tiny_satdino()
        for task in ("knn", "cached-linear", "linear"):
            try:
                files, climbs = walk(task, root, model)
            except Exception as exc:  # a task that cannot run on this folder is reported, not hidden
                rows.append([task, "-", "-", f"{type(exc).__name__}: {exc}"[:80]])
                continue
            rows.append([task, len(files), climbs, " ".join(Path(f).stem for f in files)])
    print(tabulate(rows, headers=["task", "files entered", "climbs", "files"], tablefmt="github"))


if __name__ == "__main__":
    main()
