"""The command line: ``satbench <command>`` (:mod:`satbench.cli.app`) and one module per command (``commands/``).

:func:`main` is the console entry point (``satbench = "satbench.cli:main"``); it imports the parser only when called.
"""

from __future__ import annotations

from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``satbench`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    from satbench.cli.app import main as run

    return run(argv)
