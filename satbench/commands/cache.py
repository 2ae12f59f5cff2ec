"""``satbench cache ls|clear``: inspect or empty the on-disk feature cache."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="list or clear the feature cache",
                       description="List or clear the feature cache ($SATBENCH_CACHE or $SATBENCH_HOME/cache/features).")
    csub = p.add_subparsers(dest="cache_command", metavar="SUBCOMMAND")
    ls = csub.add_parser("ls", help="one row per cached feature array")
    ls.add_argument("--dir", default=None, help="cache folder (default: the configured one)")
    ls.set_defaults(func=_ls)
    clear = csub.add_parser("clear", help="delete every cached feature array")
    clear.add_argument("--dir", default=None, help="cache folder (default: the configured one)")
    clear.set_defaults(func=_clear)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def cache_rows(cache) -> list[list]:
    """Rows ``[key, model, view, n, MB]`` of the cache entries."""
    rows = []
    for e in cache.entries():
        rows.append([e.key[:12], e.meta.get("model", ""), e.meta.get("view", ""), e.meta.get("n", ""),
                     round(e.nbytes / 2**20, 2)])
    return rows


def _ls(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from ..cache import FeatureCache

    cache = FeatureCache(args.dir)
    rows = cache_rows(cache)
    print(tabulate(rows, headers=["key", "model", "view", "n", "MB"], floatfmt=".2f"))
    print(f"{len(rows)} entries, {sum(r[4] for r in rows):.2f} MB in {cache.root}")
    return 0


def _clear(args: argparse.Namespace) -> int:
    from ..cache import FeatureCache

    cache = FeatureCache(args.dir)
    n = cache.clear()
    print(f"removed {n} entries from {cache.root}")
    return 0
