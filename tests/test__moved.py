"""The pre-layout module paths (satbench 0.2.0: ``satbench.backbones``, ``satbench.settings``, ``satbench.cache``, ...)
still import, as the very same module objects as their new homes, so a plug-in written against them registers once."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from satbench import _moved


@pytest.mark.parametrize("old", ["satbench.backbones", "satbench.backbones.base", "satbench.settings", "satbench.cache",
                                 "satbench.features", "satbench.results", "satbench.commands.run",
                                 "satbench.eval.statistics", "satbench.normalization"])
def test_an_old_path_is_the_new_module(old):
    new = _moved.new_name(old)
    assert new is not None and new != old
    assert importlib.import_module(old) is importlib.import_module(new)
    assert importlib.import_module(new).__spec__.name == new  # the alias does not rename the module


def test_names_that_did_not_move_are_left_alone():
    assert _moved.new_name("satbench.eval.knn_run") is None and _moved.new_name("satbench.data.transforms") is None
    assert _moved.new_name("satbench.io") is None and _moved.new_name("satbench.cli") is None  # packages now
    assert _moved.new_name("satbench.settingsx") is None and _moved.new_name("numpy.settings") is None
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("satbench.backbones.no_such_family")


def test_every_alias_points_at_a_module_that_exists():
    for old in _moved.MOVED:
        assert importlib.util.find_spec(_moved.new_name(f"satbench.{old}")) is not None, old


def test_a_plug_in_on_the_old_paths_registers_once():
    code = ("from satbench.backbones import register_family\n"
            "from satbench.models.backbones import base\n"
            "import satbench.backbones.base as old\n"
            "assert old is base and old.register_family is register_family\n"
            "from satbench.settings import gt\nfrom satbench.config.settings import gt as gt2\nassert gt is gt2\n")
    subprocess.run([sys.executable, "-c", code], check=True)
