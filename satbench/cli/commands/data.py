"""``satbench data <sub>``: dataset preparation and checks.

Sub-subcommands are modules ``data_<name>.py`` in this package, each with ``register(subparsers)``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil


def register(sub: argparse._SubParsersAction) -> None:
    from satbench.cli import commands

    p = sub.add_parser("data", help="prepare and check datasets", description="Prepare and check datasets.")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("data_"):
            module = importlib.import_module(f"{commands.__name__}.{info.name}")
            module.register(dsub)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
