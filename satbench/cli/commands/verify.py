"""``satbench verify MODEL [--weights W]``: the known-answer test of a weight file (``--write`` makes the entry)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify", help="check a weight file against the model card's known answer (features of a bundled image)",
        description="Load the weights strictly (with the card's sha256 pin) and compare the CLS features of a fixed "
                    "bundled image with the statistics the card records (weights.<kind>.known_answer). A wrong or "
                    "damaged file that still loads is caught. With --write, print the entry for these weights "
                    "instead (and with --out, write a copy of the card holding it; shipped cards are never edited).")
    p.add_argument("model", help="registered model name")
    p.add_argument("--weights", default=None,
                   help="a file, a folder, hf:OWNER/REPO[@REVISION][/FILE], or nothing for the card's official weights "
                        "(local cache, then the hub)")
    p.add_argument("--kind", default="pretrain", help="which declared weights of the card (pretrain, finetune)")
    p.add_argument("--device", default="cpu", help="cpu (default: the recorded answers are fp32 CPU numbers), cuda")
    p.add_argument("--allow-unpinned", action="store_true",
                   help="load a file whose sha256 differs from the card's pin (recorded as unpinned)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="load checkpoints that need types outside satbench's safe list (executes pickled code!)")
    p.add_argument("--write", action="store_true", help="compute and print a known_answer entry for these weights")
    p.add_argument("--out", default=None, help="with --write: write a copy of the card YAML holding the entry here")
    p.add_argument("--force", action="store_true", help="with --out: replace an existing file")
    p.add_argument("--image", default=None, help="with --write: image under satbench's bundled data (default ucm-mini/images/airplane/airplane16.jpg)")
    p.add_argument("--size", type=int, default=None, help="with --write: input size in pixels (default 224)")
    p.add_argument("--atol", type=float, default=None, help="with --write: tolerance to record (default 1e-4)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from satbench.errors import SatbenchError
    from satbench.models.registry import get_card
    from satbench.models.verify import (
        DEFAULT_ATOL, DEFAULT_IMAGE, DEFAULT_SIZE, check_out_path, known_answer_entry, verify_weights,
        write_card_copy
    )

    card = get_card(args.model)
    if not args.write:
        for opt in ("out", "image", "size", "atol"):
            if getattr(args, opt) is not None:
                raise SatbenchError(f"--{opt} applies with --write only")
        rep = verify_weights(card, args.weights, kind=args.kind, device=args.device,
                             allow_unpinned=args.allow_unpinned, trust_checkpoint=args.trust_checkpoint)
        if args.json:
            print(json.dumps(rep, indent=2, default=str))
        else:
            w = rep["weights"]
            print(f"{card.name} ({args.kind}): {w.get('path')} sha256 {w.get('sha256')}"
                  + (f" from {w['hf_repo']}@{w['revision']}" if w.get("hf_repo") else ""))
            print(tabulate([r[:4] for r in rep["rows"]], headers=["value", "expected", "got", "|diff|"], floatfmt=".7g"))
            print(f"ok (all within atol {rep['atol']})")
        return 0
    from satbench.models.weights import load_model

    if str(args.weights or "").strip().lower() == "random":
        raise SatbenchError("--write records the known answer of a weight file; --weights random is not one "
                            "(give the official .pth, safetensors or hf: weights)")
    if args.size is not None and args.size <= 0:
        raise SatbenchError(f"--size must be a positive number of pixels, got {args.size}")
    if args.atol is not None and not args.atol > 0:
        raise SatbenchError(f"--atol must be > 0, got {args.atol}")
    if args.out:
        check_out_path(card, args.out, overwrite=args.force)  # before the (slow) forward pass
    loaded = load_model(card, args.weights, kind=args.kind, allow_unpinned=args.allow_unpinned,
                        trust_checkpoint=args.trust_checkpoint)
    entry = known_answer_entry(loaded, args.image or DEFAULT_IMAGE, args.size or DEFAULT_SIZE,
                               atol=args.atol or DEFAULT_ATOL, device=args.device)
    w = loaded.weights.as_dict()
    official_repo = card.weights.get(args.kind, {}).get("hf_repo")
    revision = w.get("revision") if w.get("hf_repo") and w.get("hf_repo") == official_repo else None
    if args.json:
        print(json.dumps({"model": card.name, "kind": args.kind, "weights": w, "known_answer": entry}, indent=2))
    else:
        import yaml

        print(f"# {card.name} ({args.kind}) weights {w.get('path')} sha256 {w.get('sha256')}")
        snippet = {"weights": {args.kind: {"sha256": w.get("sha256"), **({"revision": revision} if revision else {}),
                                           "known_answer": entry}}}
        print(yaml.safe_dump(snippet, sort_keys=False, default_flow_style=None, width=120), end="")
    if args.out:
        out = write_card_copy(card, args.kind, entry, args.out, sha256=w.get("sha256"), revision=revision,
                              overwrite=args.force)
        print(f"wrote a copy of the card with the entry to {out} (review it, then apply it to {card.path})")
    return 0
