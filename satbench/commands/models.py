"""``satbench models``: the registry as a table."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered models", description="List the registered models.")
    p.add_argument("--format", choices=["table", "md", "csv", "json"], default="table")
    p.add_argument("--no-flops", action="store_true", help="skip the GFLOPs column (builds each model once)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..model_table import model_rows, render_rows

    rows = model_rows(flops=not args.no_flops)
    print(render_rows(rows, args.format))
    return 0
