"""``satbench models``: the registry as a table (bad cards are named on stderr and skipped)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list registered models", description="List the registered models. A card "
                       "file that fails its checks is named on stderr and left out of the table.")
    p.add_argument("--format", choices=["table", "md", "csv", "json"], default="table")
    p.add_argument("--no-flops", action="store_true", help="leave out the GFLOPs column (the shipped cards' figures are stored; other cards are built once to count them)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any card was skipped")
    p.add_argument("--families", action="store_true",
                   help="list the backbone families instead: how to name their models (a card, timm:<name>, "
                        "module:<name>, ...), what each is, its pip extra and whether that is installed")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from satbench.models.model_table import model_rows, registered_cards, render_rows

    cards, problems = registered_cards()
    if args.families:
        from satbench.models.family_table import family_rows

        print(render_rows(family_rows(cards=cards), args.format))
        return 1 if problems and args.strict else 0
    for problem in problems.values():
        print(f"satbench: warning: skipped {problem}", file=sys.stderr)
    rows = model_rows(flops=not args.no_flops, cards=cards)
    print(render_rows(rows, args.format))
    return 1 if problems and args.strict else 0
