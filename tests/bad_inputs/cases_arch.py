"""Corpus cases: user extension files (dataset specs) that are bad are named and skipped without breaking anything
else; asking for the bad one by name is its one-line error (the architecture issue's catalog and strictness points)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
