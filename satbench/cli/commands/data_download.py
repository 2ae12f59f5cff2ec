"""``satbench data download NAME... [--root DIR]``: pinned, checksummed downloads -> prepared, checked datasets."""

from __future__ import annotations

import argparse
import json
import os
import sys

from satbench.config.argtypes import positive_float
from satbench.errors import DataError


def register(dsub: argparse._SubParsersAction) -> None:
    p = dsub.add_parser(
        "download", help="download datasets from pinned sources, verify their checksums, prepare and check them",
        description="Download each dataset from a URL pinned to a revision, verify its checksum before anything is "
                    "unpacked, unpack it safely, run `data prepare` into <root>/<name> and `data check`. Datasets "
                    "without a public pinned source (WHU-RS19, RS_C11, SIRI-WHU, Potsdam, Vaihingen) print where to "
                    "get them; once their files are in the download folder the same command verifies and prepares "
                    "them. Licences of datasets that are not public domain are printed before the first download "
                    "and must be accepted (interactively, or with --yes; recorded in $SATBENCH_HOME/licences.json).")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="dataset names (uc_merced, eurosat, resisc45, loveda, whu-rs19, rs_c11, siri-whu, potsdam, "
                        "vaihingen) or 'all' for every dataset with a public source")
    p.add_argument("--root", default=None, help="data root; each dataset goes to <root>/<name> (default $SATBENCH_DATA)")
    p.add_argument("--yes", action="store_true", help="accept the datasets' licences (printed, and recorded) without asking")
    p.add_argument("--source", default=None,
                   help="an alternative pinned source (eurosat: zenodo; resisc45: torchgeo); see --list")
    p.add_argument("--files", default=None, metavar="DIR",
                   help="folder where the archives are looked for first and plain downloads go "
                        "(default $SATBENCH_HOME/downloads/<name>)")
    p.add_argument("--retries", type=int, default=5, help="retries per file after transient errors (default 5)")
    p.add_argument("--timeout", type=positive_float, default=60.0, metavar="SECONDS",
                   help="give up on a connection that is silent this long (connect or read; then retried, "
                        "default 60)")
    p.add_argument("--list", action="store_true", help="list the known sources, checksums and licences, then exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")
    p.set_defaults(func=_download)


def _list() -> int:
    from tabulate import tabulate

    from satbench.data.sources import SOURCES
    from satbench.io.download import expected_checksums, parse_hub_url

    rows = []
    for name, src in sorted(SOURCES.items()):
        for key, files in [("default", src.files), *src.alternatives.items()]:
            for rf in files:
                md5, sha, where = expected_checksums(rf)
                how = "manual" if not rf.url else ("hub" if parse_hub_url(rf.url) else "https")
                check = ("md5" if md5 else "") + ("+" if md5 and sha else "") + ("sha256" if sha else "")
                rows.append([name, key, rf.filename, how, check + ("" if where == "published" else f" ({where})"),
                             src.licence[:48]])
    print(tabulate(rows, headers=["dataset", "source", "file", "via", "checksum", "licence"]))
    return 0


def _download(args: argparse.Namespace) -> int:
    if args.list:
        return _list()
    from satbench.data.install import install_dataset
    from satbench.data.sources import get_source, public_names

    if not args.names:
        raise DataError("name at least one dataset (or 'all'); `satbench data download --list` shows them")
    root = args.root or os.environ.get("SATBENCH_DATA")
    if not root:
        raise DataError("no data root: pass --root DIR or set $SATBENCH_DATA")
    if args.retries < 0:
        raise DataError(f"--retries must be >= 0, got {args.retries}")
    names: list[str] = []
    for n in args.names:
        for m in (public_names() if n == "all" else [get_source(n).name]):
            if m not in names:
                names.append(m)
    if args.source and len(names) != 1:
        raise DataError("--source applies to one dataset at a time")
    log = (lambda msg: print(msg, file=sys.stderr)) if args.json else print
    reports, not_ready = [], []
    for name in names:
        rep = install_dataset(name, root, yes=args.yes, interactive=sys.stdin.isatty() and not args.json,
                              source=args.source, files_dir=args.files, progress=not args.no_progress,
                              retries=args.retries, timeout=args.timeout, log=log)
        reports.append(rep)
        if rep["status"] == "manual":
            not_ready.append(name)
            log(rep["manual"])
        elif rep["status"] == "present":
            log(f"{name}: already present at {rep['root']} and passes its check")
        else:
            log(f"{name}: installed at {rep['root']} ({rep['check']})")
    if args.json:
        print(json.dumps(reports, indent=2, default=str))
    if not_ready:
        print(f"not downloaded (manual source, see above): {', '.join(not_ready)}", file=sys.stderr)
        return 1
    return 0
