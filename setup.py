"""Build hook: the wheel carries the commit it was built from (``satbench/_build_info.py``), so records made by a
non-editable install still name their source (satbench.records.provenance.git_commit). Everything else is in
pyproject.toml."""

from __future__ import annotations

import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


def _commit() -> str | None:
    """``git rev-parse HEAD`` of this source tree (``-dirty`` when tracked files differ); None without git."""
    if not (HERE / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(HERE), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (f"{commit}-dirty" if dirty else commit) if commit else None


class BuildPyWithCommit(build_py):
    """``build_py``, then ``satbench/_build_info.py`` with the commit (None: a release built without git)."""

    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "satbench" / "_build_info.py"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text('"""Written at build time by setup.py."""\n\n'
                          f"GIT_COMMIT = {_commit()!r}\n")


setup(cmdclass={"build_py": BuildPyWithCommit})
