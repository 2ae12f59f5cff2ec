"""satbench.data.scene: split files that are present but not regular files are named as such (never read, never
called missing)."""

from __future__ import annotations

import os
import shutil

import pytest

from satbench.data.scene import open_scene_dataset
from satbench.errors import DataError
from support.paths import UCM_MINI


@pytest.mark.parametrize("kind, pattern", [
    ("fifo", r"split file .*val\.txt is a FIFO \(named pipe\), not a regular file \(not read\)"),
    ("zero", r"split file .*val\.txt is a character device, not a regular file"),
    ("folder", r"split file .*val\.txt is a folder, not a regular file"),
    ("missing", r"dataset folder .* has no val\.txt"),
])
def test_a_split_file_that_is_not_a_regular_file_is_named_as_such(tmp_path, kind, pattern):
    root = tmp_path / "ds"
    shutil.copytree(UCM_MINI, root)
    val = root / "val.txt"
    val.unlink()
    if kind == "fifo":
        os.mkfifo(val)
    elif kind == "zero":
        val.symlink_to("/dev/zero")
    elif kind == "folder":
        val.mkdir()
    with pytest.raises(DataError, match=pattern):
        open_scene_dataset(str(root), native_size=256, split_source="folder")


def test_split_entries_are_checked_once_per_opened_dataset(monkeypatch):
    """A run asks for the samples from the dataset check, the task and the engine: every entry's file is checked
    once per opened dataset (it was five reads of the splits per kNN run), and callers get copies."""
    import pathlib

    ds = open_scene_dataset(str(UCM_MINI))
    seen: list[str] = []
    real_is_file = pathlib.Path.is_file
    monkeypatch.setattr(pathlib.Path, "is_file", lambda self: seen.append(str(self)) or real_is_file(self))
    first = ds.samples("train")
    n = len(seen)
    assert n >= len(first) == 336
    again = ds.samples("train")
    ds.check()
    assert again == first and again is not first
    assert len(seen) == n + len(ds.samples("val")), "train entries were checked a second time"
    again.clear()
    assert len(ds.samples("train")) == 336
