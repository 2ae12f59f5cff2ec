"""The ``satbench`` command line. It only parses arguments and calls the Python API.

Subcommands live one per module in :mod:`satbench.cli.commands`; each module defines
``register(subparsers)`` which adds its parser and sets ``func(args) -> int``. Errors a user can cause
(:class:`satbench.errors.SatbenchError`) print one line and exit non-zero; so does anything unexpected
(set ``SATBENCH_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
from typing import Optional, Sequence

from satbench._version import __version__
from satbench.errors import SatbenchError, one_line


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand found in :mod:`satbench.cli.commands`."""
    from satbench.cli import commands

    parser = argparse.ArgumentParser(prog="satbench", description="Evaluation-first benchmark suite for "
                                     "self-supervised remote-sensing backbones (SatDINO, SatMAE, Scale-MAE).")
    parser.add_argument("--version", action="version", version=f"satbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith(("_", "data_")):  # plug-ins of `data`
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


class _NoteHandler(logging.Handler):
    """satbench's informational notes (``logging.getLogger("satbench")``) as ``satbench: note: ...`` lines on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        kind = "warning" if record.levelno >= logging.WARNING else "note"
        print(f"satbench: {kind}: {record.getMessage()}", file=sys.stderr)


def _setup_notes() -> None:
    log = logging.getLogger("satbench")
    if not any(isinstance(h, _NoteHandler) for h in log.handlers):
        log.addHandler(_NoteHandler())
        log.setLevel(logging.INFO)
        log.propagate = False


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``satbench`` console script."""
    debug = os.environ.get("SATBENCH_DEBUG", "") not in ("", "0")
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        _setup_notes()
        if argv[:1] == ["run"]:  # `run` parses with its task's own parser
            from satbench.cli.commands import run as run_cmd

            return int(run_cmd.main(argv[1:]) or 0)
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except SatbenchError as exc:
        if debug:
            raise
        print(f"satbench: error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("satbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except MemoryError:
        print("satbench: error: out of memory (try a smaller --batch-size)", file=sys.stderr)
        return 3
    except Exception as exc:  # never a bare traceback
        if debug:
            raise
        from satbench.runtime.workers import worker_death

        killed = worker_death(exc)
        if killed is not None:
            print(f"satbench: error: {one_line(killed)}", file=sys.stderr)
            return killed.exit_code
        print(f"satbench: internal error: {type(exc).__name__}: {one_line(exc)} "
              f"(set SATBENCH_DEBUG=1 for the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
