"""`satbench models --families` (satbench/models/family_table.py): the listing read from the family modules' source
is the registry's, a new family module appears with no other change, plug-in families appear, and a family whose
requirement is missing says which extra installs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from satbench.cli.app import main
from satbench.models import family_table as ft
from support.paths import REPO


def test_the_listing_read_from_source_is_the_registry_s():
    from_source = ft.source_entries()
    assert from_source is not None and from_source == ft.registry_entries()
    names = {e["family"]: e for e in from_source}
    assert {"satdino", "satmae", "scalemae", "timm", "module"} <= set(names)
    assert names["timm"]["naming"].startswith("timm:<name>") and names["timm"]["requires"] == ["timm"]
    assert names["module"]["naming"].startswith("module:<name>") and "satbench.wrap" in names["module"]["naming"]


def test_models_families_lists_each_family_with_its_models_and_imports_no_torch(tmp_path):
    code = ("import sys, json; from satbench.cli.app import main; rc = main(['models', '--families', '--format', "
            "'json']); print(json.dumps(['torch' in sys.modules, rc]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env={"PYTHONPATH": str(REPO), "SATBENCH_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip().splitlines()
    assert json.loads(out[-1]) == [False, 0]  # torch never imported
    rows = {row["family"]: row for row in json.loads("\n".join(out[:-1]))}
    assert rows["satdino"]["models"] == ("a model card of family satdino: satdino-vit_base-16, satdino-vit_small-16, "
                                         "satdino-vit_small-8")
    assert rows["timm"]["installed"] == "yes" and rows["timm"]["extra"] == "-"
    assert rows["scalemae"]["models"].endswith("scalemae-vit_large-16")


NEW_FAMILY = '''
from satbench.models.backbones.base import Family, register_family

PREFIX = "newfam:"

register_family(Family(
    "newfam", None, None, name_prefix=PREFIX,
    about="transformers vision models", extra="hf", requires=("satbench_no_such_module_xyz",),
))
'''


def test_a_new_family_module_appears_and_its_missing_extra_is_named(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "backbones"
    shutil.copytree(ft.BACKBONES_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "newfam.py").write_text(NEW_FAMILY)
    monkeypatch.setattr(ft, "BACKBONES_DIR", folder)
    assert main(["models", "--families", "--format", "json"]) == 0
    rows = {row["family"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["newfam"] == {
        "family": "newfam", "models": "newfam:<name>", "about": "transformers vision models",
        "extra": "hf", "installed": "no (satbench_no_such_module_xyz missing: pip install 'satbench[hf]')"}
    # a field that is not a literal: the registry is imported instead (no newfam there)
    (folder / "newfam.py").write_text(NEW_FAMILY.replace('about="transformers vision models"',
                                                                  'about=str(1)'))
    assert ft.source_entries() is None
    assert "newfam" not in {e["family"] for e in ft.family_entries()}


def test_a_plug_in_family_is_listed(tmp_path, monkeypatch, capsys):
    from satbench.models.backbones import FAMILIES

    (tmp_path / "my_family_plugin.py").write_text(NEW_FAMILY.replace('"newfam"', '"myfam"').replace(
        '"newfam:"', '"myfam:"').replace("satbench_no_such_module_xyz", "json"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SATBENCH_PLUGINS", "my_family_plugin")
    try:
        assert main(["models", "--families", "--format", "json"]) == 0
        rows = {row["family"]: row for row in json.loads(capsys.readouterr().out)}
        assert rows["myfam"]["models"] == "myfam:<name>" and rows["myfam"]["installed"] == "yes"
        assert {"satdino", "timm", "module"} <= set(rows)
    finally:
        FAMILIES.pop("myfam", None)
        sys.modules.pop("my_family_plugin", None)
        from satbench.runtime import plugins

        plugins._LOADED.discard("my_family_plugin")
