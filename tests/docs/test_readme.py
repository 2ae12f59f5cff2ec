"""README.md's quick paths run as written: every ``bash`` block marked ``<!-- quick-path -->`` is executed line by line
with the installed ``satbench`` command, in a fresh folder that holds what the text tells the user to bring
(``my-vit.safetensors``: a timm ViT-S/16 state dict; ``./mydata``: a scene folder of real UC Merced images), offline."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
SATBENCH = Path(sys.executable).parent / "satbench"

# The quick paths by their heading; the one that runs a 4-scale kNN of a ViT-S on all of ucm-mini (about 1.5 min on
# 2 cores) is slow. A new block must be placed here, so that it cannot be added without being run.
EXPECTED = {
    "1. Reproduce the paper's table": "fast",
    "2. Evaluate your own model": "slow",
    "3. Evaluate on your own data": "fast",
}


def quick_paths(text: str) -> dict[str, list[str]]:
    """``{heading: [command lines]}`` of the README's ``<!-- quick-path -->`` bash blocks."""
    out: dict[str, list[str]] = {}
    heading = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("### "):
            heading = lines[i][4:].strip()
        if lines[i].strip() == "<!-- quick-path -->":
            assert lines[i + 1] == "```bash", f"README.md:{i + 2}: a quick-path marker must be followed by ```bash"
            j = i + 2
            block = []
            while lines[j] != "```":
                if lines[j].strip() and not lines[j].lstrip().startswith("#"):
                    block.append(lines[j].strip())
                j += 1
            assert heading not in out, f"two quick-path blocks under {heading!r}"
            out[heading] = block
            i = j
        i += 1
    return out


def test_every_quick_path_is_known_and_runs_satbench_only():
    paths = quick_paths(README.read_text(encoding="utf-8"))
    assert set(paths) == set(EXPECTED), f"README quick paths {sorted(paths)} != the ones this test runs"
    for heading, block in paths.items():
        assert block, heading
        for line in block:
            assert shlex.split(line)[0] == "satbench", f"{heading}: {line!r} is not a satbench command"


def test_the_parser_finds_blocks_and_rejects_a_marker_without_a_block():
    text = "### A\n<!-- quick-path -->\n```bash\n# comment\nsatbench models\n\n```\n### B\ntext\n"
    assert quick_paths(text) == {"A": ["satbench models"]}
    with pytest.raises(AssertionError, match="must be followed by"):
        quick_paths("### A\n<!-- quick-path -->\n```python\nx\n```\n")


def _prepare(cwd: Path, ucm_mini) -> None:
    """What the README's text asks the user to bring: their weights file and their scene folder."""
    import timm
    import torch
    from safetensors.torch import save_file
    from support.tiny_runs import small_scene_copy

    torch.manual_seed(0)
    model = timm.create_model("vit_small_patch16_224", pretrained=False, num_classes=0)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(cwd / "my-vit.safetensors"))
    small_scene_copy(cwd, ucm_mini).rename(cwd / "mydata")


def _run(line: str, cwd: Path) -> str:
    args = shlex.split(line)
    env = dict(os.environ, SATBENCH_OFFLINE="1", HF_HUB_OFFLINE="1", COLUMNS="200")
    proc = subprocess.run([str(SATBENCH), *args[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"README line {line!r} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout + proc.stderr


def _check(heading: str, outputs: list[str], results: Path) -> None:
    """Each path did what its text says, not merely exited 0."""
    records = sorted(p.name for p in results.glob("*.json")) if results.is_dir() else []
    if heading.startswith("1."):
        dry, board = outputs
        assert "satbench data download eurosat --root" in dry and "missing" in dry
        assert "SatDINO ViT-S/16" in board and "paper (SatDINO README)" in board
        assert records == []  # a dry run writes nothing
    elif heading.startswith("2."):
        run, board = outputs
        assert any("_knn_timm" in r and "_ucm-mini_" in r for r in records), records
        assert "timm:vit_small_patch16_224.dino" in board
    else:
        run, suite = outputs
        assert "computed:mydata:train" in run
        knn = [r for r in records if "_knn_" in r and "_mydata_" in r]
        assert len(knn) == 1, records  # the suite skipped the kNN that `run` recorded
        assert any("_cached-linear_" in r and "_mydata_" in r for r in records), records


@pytest.mark.parametrize("heading", [pytest.param(h, marks=[pytest.mark.slow] if speed == "slow" else [])
                                     for h, speed in EXPECTED.items()])
def test_quick_path_runs_as_written(heading, tmp_path, ucm_mini):
    if not SATBENCH.exists():
        pytest.fail(f"{SATBENCH} is missing: the README's install puts the satbench command next to the interpreter")
    block = quick_paths(README.read_text(encoding="utf-8"))[heading]
    cwd = tmp_path / "work"
    cwd.mkdir()
    _prepare(cwd, ucm_mini)
    outputs = [_run(line, cwd) for line in block]
    _check(heading, outputs, Path(os.environ["SATBENCH_RESULTS"]))
