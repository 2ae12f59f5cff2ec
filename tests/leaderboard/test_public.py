"""``satbench.leaderboard(records)``: the package is callable, and the API, the package and
:func:`satbench.leaderboard.public.leaderboard` give the same document (the leaderboard no longer imports the API)."""

from __future__ import annotations

import satbench
import satbench.api
from satbench.leaderboard import public
from satbench.records.results import read_records
from support.leaderboard_records import RECORDS


def test_one_document_from_the_package_the_api_and_a_folder():
    records = read_records(RECORDS)
    doc = public.leaderboard(records)
    assert "kNN" in doc and doc.count("\n") > 10
    assert satbench.leaderboard(records) == doc                      # the callable package
    assert satbench.api.leaderboard(records) == doc
    assert satbench.api.leaderboard(results_dir=RECORDS) == doc      # records read from the folder
    assert public.leaderboard(results_dir=RECORDS, fmt="csv", task="knn") == satbench.api.leaderboard(
        results_dir=RECORDS, fmt="csv", task="knn")
