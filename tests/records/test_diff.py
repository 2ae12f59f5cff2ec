"""What differs between two records: results diff's rows, and the short protocol difference compare's refusal prints."""

from __future__ import annotations

import copy
import json

from satbench.records.diff import diff_records, protocol_difference
from support.paths import LEADERBOARD_FIXTURES

REC = json.loads(next((LEADERBOARD_FIXTURES / "records").glob("*fix001.json")).read_text())


def test_the_protocol_difference_names_each_changed_parameter():
    b = copy.deepcopy(REC)
    b["protocol"]["content"]["params"]["size_multiple"] = 14
    b["protocol"]["content"]["params"]["k"] = [20]
    assert protocol_difference(REC, b) == "size_multiple 16 vs 14; k [10, 20, 100, 200] vs [20]"
    assert ("protocol.content.params.size_multiple", 16, 14) in diff_records(REC, b)
    assert protocol_difference(REC, copy.deepcopy(REC)) is None


def test_many_differences_are_cut_with_a_pointer_to_results_diff():
    b = copy.deepcopy(REC)
    for key, value in (("size_multiple", 14), ("temperature", 0.1), ("k_report", 10), ("metric", "l2")):
        b["protocol"]["content"]["params"][key] = value
    assert protocol_difference(REC, b).endswith("and 1 more (satbench results diff A B)")
