"""Records name their source: the checkout's commit, the commit stamped into a built wheel, or 'release X.Y.Z'
(never 'commit unknown' after the README's non-editable install). tests/e2e/test_packaging.py builds the wheel."""

from __future__ import annotations

import sys
import types

from satbench.leaderboard.runs import provenance_line
from satbench.records import provenance as pv


def test_a_built_package_names_the_commit_it_was_built_from(monkeypatch):
    monkeypatch.setitem(sys.modules, "satbench._build_info", types.SimpleNamespace(GIT_COMMIT="ab" * 20))
    assert pv.built_commit() == "ab" * 20
    monkeypatch.setitem(sys.modules, "satbench._build_info", types.SimpleNamespace(GIT_COMMIT=None))
    assert pv.built_commit() is None


def test_the_checkout_commit_is_a_git_hash():
    pv.git_commit.cache_clear()
    commit = pv.git_commit()
    assert commit is not None and len(commit.split("-")[0]) == 40


def test_a_record_without_a_commit_says_which_release():
    rec = {"provenance": {"satbench_version": "0.2.0", "git_commit": None, "date": "2026-01-01T00:00:00+00:00"}}
    assert provenance_line(rec)["commit"] == "release 0.2.0"
    rec["provenance"]["git_commit"] = "1111111"
    assert provenance_line(rec)["commit"] == "1111111"
    assert pv.source_label(None, None) == "unknown"
