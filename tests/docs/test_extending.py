"""docs/extending.md runs as written: its file blocks are written into a temporary folder, its `sh run` blocks are
executed (each `export` sets the environment, each `satbench ...` line runs the CLI and must succeed), and its Python
example runs. Plug-ins registered here are removed afterwards, so other tests see the shipped registries only."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from satbench.cli.app import main
from satbench.runtime.resources import bundled_data_dir

DOC = Path(__file__).resolve().parents[2] / "docs" / "extending.md"
BLOCK = re.compile(r"```(\w+)([^\n]*)\n(.*?)```", re.S)


def blocks() -> list[tuple[str, str, str]]:
    return [(lang, info.strip(), body) for lang, info, body in BLOCK.findall(DOC.read_text())]


def _tinyland(root: Path) -> None:
    """The dataset folder the guide's spec describes: two real classes of the bundled subset."""
    ucm = bundled_data_dir() / "ucm-mini"
    d = root / "data" / "tinyland"
    for split in ("train", "val"):
        lines = [ln for ln in (ucm / f"{split}.txt").read_text().split() if ln.split("/")[1] in ("agricultural", "forest")]
        (d).mkdir(parents=True, exist_ok=True)
        (d / f"{split}.txt").write_text("\n".join(lines) + "\n")
        for ln in lines:
            (d / "images" / ln.split("/")[1]).mkdir(parents=True, exist_ok=True)
            shutil.copy(ucm / "images" / ln[2:], d / "images" / ln[2:])


@pytest.fixture
def restore_registries():
    from satbench.runtime import plugins
    from satbench.models.backbones import FAMILIES
    from satbench.eval.task import TASKS, list_tasks

    list_tasks()  # the built-in tasks are registered before the snapshot
    families, tasks, loaded = dict(FAMILIES), dict(TASKS), set(plugins._LOADED)
    yield
    FAMILIES.clear(); FAMILIES.update(families)  # noqa: E702
    TASKS.clear(); TASKS.update(tasks)  # noqa: E702
    plugins._LOADED.clear(); plugins._LOADED.update(loaded)  # noqa: E702


def test_the_guide_has_an_example_for_each_extension_point():
    files = [info.split("=", 1)[1] for _, info, _ in blocks() if info.startswith("file=")]
    assert {"datasets/tinyland.yaml", "plugins/toy_family.py", "cards/toy-cnn.yaml", "plugins/centroid_task.py",
            "protocols/centroid-v1.yaml"} <= set(files)


def test_extending_guide_runs_as_written(tmp_path, monkeypatch, capsys, restore_registries):
    import importlib

    monkeypatch.chdir(tmp_path)
    (tmp_path / "plugins").mkdir()
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    _tinyland(tmp_path)
    commands = 0
    for lang, info, body in blocks():
        if info.startswith("file="):
            target = tmp_path / info.split("=", 1)[1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(body)
            importlib.invalidate_caches()
        elif lang == "sh" and info == "run":
            for line in body.strip().splitlines():
                words = shlex.split(line)
                if words[0] == "export":
                    key, value = words[1].split("=", 1)
                    monkeypatch.setenv(key, value)
                    continue
                assert words[0] == "satbench", line
                code = main(words[1:])
                out, err = capsys.readouterr()
                assert code == 0, f"{line}\n{err}"
                commands += 1
                if words[1:3] == ["run", "--task"]:
                    assert "record:" in out, out
                if words[1] == "models":
                    assert "toy-cnn" in out and "toycnn" in out
                if words[1] == "leaderboard":
                    assert "Nearest-centroid top-1" in out and "toy-cnn" in out, out
    assert commands == 6
    python = [body for lang, info, body in blocks() if lang == "python" and not info]
    assert len(python) == 1
    namespace: dict = {}
    exec(compile(python[0], str(DOC), "exec"), namespace)  # noqa: S102 (our own documentation)
    record = namespace["record"]
    assert record.task == "centroid" and record["protocol"]["overrides"] == {"size": 64}
    assert 0 <= record.summary["top1"] <= 100
