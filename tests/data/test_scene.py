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
