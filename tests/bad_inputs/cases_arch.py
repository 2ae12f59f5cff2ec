"""Corpus cases: user extension files (dataset specs) that are bad are named and skipped without breaking anything
else, and asking for the bad one by name is its one-line error; protocol files are typed at the top level and valid on
their own, whatever the overrides; a card's paper: block is typed (the architecture issue's catalog and strictness
points)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import os

import yaml

REPO = Path(__file__).resolve().parents[2]
CATALOG = REPO / "satbench" / "data" / "catalog"
RECORDS = REPO / "tests" / "fixtures" / "leaderboard" / "records"
CARDS = REPO / "tests" / "fixtures" / "cards"


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
    # model cards: the paper: block is typed like the rest of the card (a bad one is skipped; asked for, its error)
    tiny = (CARDS / "satdino-test-tiny.yaml").read_text()
    for cid, block, pattern in [
        ("paper-unknown-key", "paper: {depth: 4}\n", r"unknown key paper\.depth"),
        ("paper-not-a-number", "paper: {params_m: lots}\n", r"paper\.params_m must be a number, got 'lots'"),
    ]:
        folder = out / "arch_cards" / cid
        folder.mkdir(parents=True, exist_ok=True)
        name = f"arch-{cid}"
        (folder / f"{name}.yaml").write_text(tiny.replace("name: satdino-test-tiny", f"name: {name}") + block)
        env = {"SATBENCH_MODEL_CARDS": os.pathsep.join([str(CARDS), str(folder)])}
        if cid == "paper-unknown-key":  # `models` counts every shipped model's parameters: once is enough
            case(f"card-{cid}-listed", ["models", "--no-flops"], "ok", rf"warning: skipped .*{name}\.yaml: {pattern}",
                 env=env)
        case(f"card-{cid}-requested", [a if a != "satdino-test-tiny" else name for a in knn] + ["--dataset", "ucm-mini"],
             "error", rf"{name}\.yaml: {pattern}", env=env)
