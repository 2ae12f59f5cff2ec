"""``satbench corruptions list|preview``: a corruption protocol's types and parameters (with the sources its file
gives in comments), and a contact sheet of it on one image (types x clean + severities) to check by eye that
severity 5 is hard and not absurd."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    from satbench.config.argtypes import positive_int, seed
    from satbench.data.corruptions import DEFAULT_PROTOCOL

    p = sub.add_parser("corruptions", help="list a corruption protocol's parameters or preview it on an image",
                       description="Corruption protocols (tasks/corruptions/*.yaml, used by `run --corruptions`): list "
                                   "the types, the parameters of severities 1..5 and their sources, or write a contact "
                                   "sheet of one image under every type and severity.")
    csub = p.add_subparsers(dest="corruptions_command", metavar="SUBCOMMAND")
    ls = csub.add_parser("list", help="the protocol's types, severity parameters and their sources")
    ls.add_argument("--protocol", default=None, metavar="NAME|PATH",
                    help=f"corruption protocol in tasks/corruptions/ or a YAML path (default {DEFAULT_PROTOCOL})")
    ls.set_defaults(func=_list)
    pv = csub.add_parser("preview", help="contact sheet PNG: one row per type, clean + one column per severity",
                         description="Write <image>.<protocol>.sheet.png into --out: one row per corruption type, the "
                                     "clean image then one column per severity, each tile captioned with its "
                                     "parameter. Corrupted at native size, seeded from the image file's sha256.")
    pv.add_argument("image", help="an image file (JPEG, PNG, TIFF...; at most 64 MiB and 4096 x 4096 px)")
    pv.add_argument("--out", required=True, help="folder for the PNG (created)")
    pv.add_argument("--types", nargs="+", default=None, metavar="TYPE", help="corruption types (default: all 12)")
    pv.add_argument("--severities", nargs="+", default=None, metavar="S",
                    help="severities: integers 1..5 or a range like 1..5 (default 1..5)")
    pv.add_argument("--protocol", default=None, metavar="NAME|PATH",
                    help=f"corruption protocol in tasks/corruptions/ or a YAML path (default {DEFAULT_PROTOCOL})")
    pv.add_argument("--seed", type=seed, default=None, help="corruption seed (default: the protocol's seed)")
    pv.add_argument("--tile", type=positive_int, default=256,
                    help="tile size in px (images are fitted into it, never enlarged; default 256)")
    pv.set_defaults(func=_preview)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _protocol(args: argparse.Namespace):
    from satbench.data.corruptions import DEFAULT_PROTOCOL, load_corruption_protocol

    return load_corruption_protocol(args.protocol or DEFAULT_PROTOCOL)


def _value(v) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(_value(x) for x in v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def _list(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from satbench.config.yaml_comments import key_comments
    from satbench.data.corruptions import SEVERITIES, TYPES
    from satbench.io.bounded import read_bytes_bounded
    from satbench.leaderboard.escape import plain

    proto, settings = _protocol(args)
    comments: dict[str, str] = {}
    if proto.path:
        try:
            comments = key_comments(read_bytes_bounded(proto.path, 1 << 20).decode("utf-8", "replace"))
        except OSError:
            comments = {}
    rows = [[kind] + [_value(getattr(settings, kind)[s - 1]) for s in SEVERITIES] + [comments.get(kind, "")]
            for kind in TYPES]
    print(plain(f"corruption protocol {proto.name} (hash {proto.hash[:12]}; {proto.path or 'built in'})"))
    print(tabulate([[plain(c) for c in r] for r in rows], headers=["type", *(f"s{s}" for s in SEVERITIES), "source"],
                   tablefmt="github", disable_numparse=True))
    others = [k for k in proto.params if k not in TYPES]
    if others:
        print()
        for k in others:
            note = comments.get(k, "")
            print(plain(f"{k}: {_value(proto.params[k])}" + (f"  ({note})" if note else "")))
    return 0


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "image"


def _preview(args: argparse.Namespace) -> int:
    from satbench.data.corruption_preview import contact_sheet, read_preview_image, sheet_png
    from satbench.data.corruptions import SEVERITIES, parse_severities, parse_types
    from satbench.errors import DataError
    from satbench.io.atomic import atomic_write_bytes
    from satbench.leaderboard.escape import plain

    kinds = parse_types(args.types)
    sev = parse_severities(args.severities) if args.severities is not None else list(SEVERITIES)
    proto, settings = _protocol(args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out}: exists and is not a folder")
    if args.tile > 2048:
        raise DataError(f"--tile {args.tile}: at most 2048 px")
    image = read_preview_image(args.image)
    seed = settings.seed if args.seed is None else args.seed
    sheet = contact_sheet(image, settings, kinds, sev, seed=seed, tile=args.tile)
    path = atomic_write_bytes(out / f"{_safe(Path(args.image).stem)}.{_safe(proto.name)}.sheet.png", sheet_png(sheet))
    print(plain(f"wrote {path} ({sheet.width} x {sheet.height} px: {len(kinds)} types x clean + severities "
                f"{', '.join(map(str, sev))}; protocol {proto.name} {proto.hash[:12]}, seed {seed})"), file=sys.stderr)
    return 0
