"""Corpus cases: arguments validated at parse time, split entries bounded, protocols strict (trust issue item 16 and
the architecture issue's strict protocols)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def add_cases(out: Path, res: Path, case, ctx: dict[str, Any]) -> None:
    knn = ctx["knn"]
    base = [a for a in knn]
    for cid, extra, pattern in [
        ("batch-size-zero", ["--batch-size", "0"], r"positive integer"),
        ("batch-size-negative", ["--batch-size", "-8"], r"positive integer"),
        ("seed-negative", ["--seed", "-1"], r"integer seed in 0\.\.4294967295"),
        ("seed-too-large", ["--seed", str(2**32)], r"integer seed in 0\.\.4294967295"),
        ("scales-nan", ["--scales", "nan"], r"positive number"),
        ("scales-inf", ["--scales", "inf"], r"positive number"),
        ("device-meta", ["--device", "meta"], r"auto, cpu, cuda or cuda:N"),
        ("num-workers-negative", ["--num-workers", "-2"], r"non-negative integer, got .-2."),
        ("native-size-zero", ["--native-size", "0"], r"positive integer"),
    ]:
        case(f"arg-{cid}", base + extra, "usage", pattern)
    # a 4,000-character split entry
    d = out / "ds_long_entry"
    (d / "images" / "forest").mkdir(parents=True, exist_ok=True)
    ucm = REPO / "satbench" / "data" / "bundled" / "ucm-mini"
    lines = [ln for ln in (ucm / "train.txt").read_text().split() if "/forest/" in ln][:3]
    for ln in lines:
        (d / "images" / "forest" / ln.split("/")[-1]).write_bytes((ucm / "images" / ln[2:]).read_bytes())
    (d / "train.txt").write_text("\n".join(lines) + "\n")
    (d / "val.txt").write_text(lines[0] + "\n./forest/" + "x" * 4000 + ".jpg\n")
    case("split-entry-4000-chars", base + ["--dataset", d], "error", r"val\.txt:2: entry of 4013 characters")
    # strict protocols: impossible values and misspelled keys, one line naming the file and the key
    proto = yaml.safe_load((REPO / "tasks" / "knn" / "satdino-knn-v1.yaml").read_text())
    for cid, edit, pattern in [
        ("resize-ratio-zero", lambda p: p.update(resize_ratio=[256, 0]), r"knn-resize-ratio-zero.*resize_ratio must be > 0"),
        ("temperature-misspelled", lambda p: p.update(temprature=p.pop("temperature")),
         r"knn-temperature-misspelled.*unknown key temprature"),
        ("k-not-a-list", lambda p: p.update(k=20), r"k must be a list"),
        ("scales-empty", lambda p: p.update(scales=[]), r"scales must not be empty"),
    ]:
        data = yaml.safe_load(yaml.safe_dump(proto))
        data["name"] = f"knn-{cid}"
        edit(data["params"])
        path = out / f"knn-{cid}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        case(f"protocol-{cid}", [a for a in base if a not in ("--scales", "0.125", "--k", "1")] + ["--protocol", path],
             "error", pattern)
    # a temperature so small that exp(sim / T) overflows float32: the run converts to the shifted vote (recorded as
    # extra.vote = "shifted"; equal in argmax, never a non-finite weight; tests/eval/test_knn_search.py checks the numbers)
    data = yaml.safe_load(yaml.safe_dump(proto))
    data["name"] = "knn-temperature-tiny"
    data["params"]["temperature"] = 0.005
    path = out / "knn-temperature-tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    case("protocol-temperature-0.005-votes-without-overflow",
         [a for a in base if a not in ("--scales", "0.125", "--k", "1")] + ["--protocol", path, "--scales", "0.125"], "ok")
