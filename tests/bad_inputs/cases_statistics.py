"""Corpus cases: the statistics options (``--seeds``, ``--train-fraction``, ``--shots``, ``--draws``, ``--subset-seed``,
``--resamples``). Malformed values are usage errors at parse time; combinations a task cannot honour are one error line
before any work (satbench.stats.attach.check_options)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def add_cases(out: Path, res: Path, case, ctx: dict[str, Any]) -> None:
    knn = list(ctx["knn"])
    lin = ["run", "--task", "linear", "--model", "satdino-test-tiny", "--weights", "random", "--epochs", "1",
           "--results-dir", str(res), "--no-progress", "--dataset", "ucm-mini", "--output-dir", str(out / "stats_lin")]
    for cid, argv, pattern in [
        ("train-fraction-zero", knn + ["--train-fraction", "0"], r"fraction in \(0, 1\], got '0'"),
        ("train-fraction-above-one", knn + ["--train-fraction", "1.5"], r"fraction in \(0, 1\], got '1\.5'"),
        ("train-fraction-nan", knn + ["--train-fraction", "nan"], r"fraction in \(0, 1\], got 'nan'"),
        ("train-fraction-text", knn + ["--train-fraction", "ten"], r"fraction in \(0, 1\], got 'ten'"),
        ("shots-zero", knn + ["--shots", "0"], r"positive integer, got '0'"),
        ("shots-float", knn + ["--shots", "2.5"], r"positive integer, got '2\.5'"),
        ("draws-zero", knn + ["--train-fraction", "0.5", "--draws", "0"], r"positive integer, got '0'"),
        ("draws-negative", knn + ["--train-fraction", "0.5", "--draws", "-3"], r"positive integer, got '-3'"),
        ("subset-seed-negative", knn + ["--shots", "2", "--subset-seed", "-1"], r"non-negative integer, got '-1'"),
        ("resamples-zero", knn + ["--resamples", "0"], r"positive integer, got '0'"),
        ("seeds-negative", lin + ["--seeds", "0", "-1"], r"non-negative integer, got '-1'"),
        ("seeds-text", lin + ["--seeds", "zero"], r"non-negative integer, got 'zero'"),
        ("seeds-on-knn", knn + ["--seeds", "0", "1"], r"unrecognized arguments: --seeds"),
        ("train-fraction-on-linear", lin + ["--train-fraction", "0.1"], r"unrecognized arguments: --train-fraction"),
    ]:
        case(f"stats-{cid}", argv, "usage", pattern)
    for cid, argv, pattern in [
        ("draws-without-subset", knn + ["--draws", "3"], r"--draws / --subset-seed need --train-fraction or --shots"),
        ("train-fraction-twice", knn + ["--train-fraction", "0.1", "0.1"], r"train fractions list a value twice"),
        ("shots-twice", knn + ["--shots", "5", "5"], r"shots lists a value twice"),
        ("seeds-twice", lin + ["--seeds", "1", "1"], r"seeds lists a value twice"),
        ("seeds-with-evaluate", lin + ["--seeds", "0", "1", "--evaluate"], r"--seeds trains once per seed; --evaluate"),
    ]:
        case(f"stats-{cid}", argv, "error", pattern)
