"""``satbench cache ls|clear``: inspect or empty the on-disk feature cache.

Both only touch what satbench recognises as its own cache entries (by their metadata's format marker and a key that
hashes to the file name) and its own leftover temporary files; every other file or folder is left alone and counted,
the cache folder itself is never deleted, and no symbolic link inside it is followed.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cache", help="list or clear the feature cache",
                       description="List or clear the feature cache ($SATBENCH_CACHE or $SATBENCH_HOME/cache/features).")
    csub = p.add_subparsers(dest="cache_command", metavar="SUBCOMMAND")
    ls = csub.add_parser("ls", help="one row per cached feature array")
    ls.add_argument("--dir", default=None, help="cache folder (default: the configured one)")
    ls.set_defaults(func=_ls)
    clear = csub.add_parser("clear", help="delete every cached feature array (only entries satbench wrote)")
    clear.add_argument("--dir", default=None, help="cache folder (default: the configured one)")
    clear.set_defaults(func=_clear)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def cache_rows(cache) -> list[list]:
    """Rows ``[key, model, view, n, MB]`` of the cache entries."""
    return _rows(cache.entries())


def _rows(entries) -> list[list]:
    rows = []
    for e in entries:
        rows.append([e.key[:12], _text(e.meta.get("model", "")), _text(e.meta.get("view", "")),
                     _text(e.meta.get("n", "")), round(e.nbytes / 2**20, 2)])
    return rows


def _text(v) -> str:
    """A metadata value as a short table cell (metadata is only shown, never trusted)."""
    s = v if isinstance(v, str) else str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
    return s[:60]


def _warn_scan(scan) -> None:
    from satbench.eval.cache import warn

    for entry, why in scan.damaged:
        warn(f"feature cache entry {entry.path.with_suffix('.json')} is damaged: {why}")
    for path, why in scan.foreign:
        if why:
            warn(f"{path} {why}; not a satbench cache entry, left alone")


def _foreign_note(n: int) -> str:
    return f"; left alone {n} file(s)/folder(s) satbench did not write" if n else ""


def _ls(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from satbench.eval.cache import FeatureCache

    cache = FeatureCache(args.dir)
    scan = cache.scan()
    _warn_scan(scan)
    rows = _rows(scan.entries)
    print(tabulate(rows, headers=["key", "model", "view", "n", "MB"], floatfmt=".2f"))
    damaged = f", {len(scan.damaged)} damaged" if scan.damaged else ""
    if scan.legacy:
        damaged += f", {len(scan.legacy)} of an earlier satbench format (unused; `satbench cache clear` removes them)"
    print(f"{len(rows)} entries{damaged}, {sum(r[4] for r in rows):.2f} MB in {cache.root}"
          f"{_foreign_note(len(scan.foreign))}")
    return 0


def _clear(args: argparse.Namespace) -> int:
    from satbench.eval.cache import FeatureCache
    from satbench.errors import SatbenchError

    cache = FeatureCache(args.dir)
    res = cache.purge(verbose=True)
    print(f"removed {res.removed} entries ({res.files} files) from {cache.root}{_foreign_note(res.foreign)}")
    if res.problems:
        raise SatbenchError(f"could not delete {len(res.problems)} cache file(s): {res.problems[0]}")
    return 0
