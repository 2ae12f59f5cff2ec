"""Corpus cases: user extension files (dataset specs) that are bad are named and skipped without breaking anything
else, and asking for the bad one by name is its one-line error; protocol files are typed at the top level and valid on
their own, whatever the overrides (the architecture issue's catalog and strictness points)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "satbench" / "data" / "catalog"
RECORDS = REPO / "tests" / "fixtures" / "leaderboard" / "records"


def _bad_dataset_folder(out: Path, tag: str) -> Path:
    """A $SATBENCH_DATASETS folder holding one spec with an unknown key (one folder per case: a bad spec is named
    once per process)."""
    folder = out / "arch_datasets" / tag
    folder.mkdir(parents=True, exist_ok=True)
    text = (CATALOG / "ucm-mini.yaml").read_text().replace("name: ucm-mini", "name: advunk")
    (folder / "advunk.yaml").write_text(text + "extra_key: 1\n")
    return folder


def add_cases(out: Path, res: Path, case, ctx: dict[str, Any]) -> None:
    knn = [str(a) for a in ctx["knn"]]
    warned = r"warning: skipped dataset spec .*advunk\.yaml: unknown key extra_key"
    case("catalog-bad-user-spec-beside-a-good-dataset", knn + ["--dataset", "ucm-mini"], "ok", "",
         env={"SATBENCH_DATASETS": _bad_dataset_folder(out, "run")})
    case("catalog-bad-user-spec-beside-the-leaderboard", ["leaderboard", "--results-dir", RECORDS], "ok", warned,
         env={"SATBENCH_DATASETS": _bad_dataset_folder(out, "leaderboard")})
    case("catalog-bad-user-spec-requested", knn + ["--dataset", "advunk"], "error",
         r"dataset spec .*advunk\.yaml: unknown key extra_key", env={"SATBENCH_DATASETS": _bad_dataset_folder(out, "ask")})
    # protocols: a typed top level, and a bad value in the file is refused even when an override replaces it
    proto = yaml.safe_load((REPO / "tasks" / "knn" / "satdino-knn-v1.yaml").read_text())
    for cid, edit, pattern in [
        ("version-a-string", lambda d: d.update(version="one"), r"arch-version-a-string\.yaml: version is 'one', expected"),
        ("scales-overridden", lambda d: d["params"].update(scales=[-0.5]),
         r"arch-scales-overridden\.yaml\): every value of scales must be > 0"),
    ]:
        data = yaml.safe_load(yaml.safe_dump(proto))
        data["name"] = f"arch-{cid}"
        edit(data)
        path = out / f"arch-{cid}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        case(f"protocol-{cid}", knn + ["--protocol", path], "error", pattern)  # knn overrides --scales and --k
