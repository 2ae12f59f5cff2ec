"""A non-editable install ships the cards, protocols, segmentation configs, reference numbers and bundled data."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile

import pytest
from support.paths import REPO


def _checkout_commit() -> str:
    """What the wheel must carry: HEAD of this checkout, ``-dirty`` when tracked files differ (setup.py's rule)."""
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return f"{head}-dirty" if dirty else head


@pytest.mark.skipif(not (REPO / "pyproject.toml").exists(), reason="needs the source tree")
def test_wheel_carries_all_data_and_resolves_it(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                           str(tmp_path / "dist"), str(REPO)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("satbench-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.parent.relative_to(REPO)) for p in (REPO / "satbench").rglob("__init__.py")}
    missing = sorted(p for p in packages if f"{p}/__init__.py" not in names)
    assert not missing, f"packages missing from the wheel (add them to pyproject.toml): {missing}"
    modules = {str(p.relative_to(REPO)) for p in (REPO / "satbench").rglob("*.py") if "bundled" not in p.parts}
    assert not sorted(modules - names), sorted(modules - names)
    assert {"satbench/data/catalog/eurosat.yaml", "satbench/_tasks/segmentation/upernet-v1.yaml",
            "satbench/models/card_stats.json", "satbench/_build_info.py"} <= names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import satbench, satbench.runtime.resources as r\n"
        "from satbench.models.registry import list_cards\n"
        "from satbench.config.protocols import list_protocols\n"
        "from satbench.data.scene import open_scene_dataset\n"
        f"assert satbench.__file__.startswith({str(site)!r}), satbench.__file__\n"
        "assert {'satdino-vit_small-16', 'satdino-vit_small-8', 'satdino-vit_base-16'} <= {c.name for c in list_cards()}\n"
        "assert {'satdino-knn-v1', 'satdino-linear-v1', 'satdino-vit_small-16'} <= {p.name for p in list_protocols()}\n"
        "assert (r.tasks_dir() / 'segmentation' / '_base_' / 'datasets' / 'potsdam.py').is_file()\n"
        "assert (r.reference_dir() / 'satdino_readme.json').is_file()\n"
        "d = open_scene_dataset('ucm-mini'); assert len(d.samples('val')) == 84\n"
        "from satbench.data.catalog import list_datasets; assert len(list_datasets()) >= 11\n"
        "from satbench.eval.task import list_tasks; assert {'knn', 'segmentation'} <= {t.name for t in list_tasks()}\n"
        "assert (r.bundled_data_dir().parent / 'splits' / 'eurosat' / 'train.txt').is_file()\n"
        "from satbench.records.provenance import git_commit\n"
        f"assert git_commit() == {_checkout_commit()!r}, git_commit()\n"
        "from satbench.models.model_table import shipped_cards_only; assert shipped_cards_only()\n"
        "print('ok')\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), sysconfig.get_paths()["purelib"]]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
