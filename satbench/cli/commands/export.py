"""``satbench export``: a model's backbone weights as safetensors (default) or the official ``.pth`` layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from satbench.cli.commands._common import add_model_args, load_from_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a model's backbone weights as safetensors (or official .pth)",
                       description="Load --weights strictly (safely) and write the backbone for inference: safetensors "
                                   "holds tensors only and can never execute code when loaded.")
    add_model_args(p, default_model="satdino-vit_small-16")
    p.add_argument("--format", choices=["safetensors", "pth"], default="safetensors")
    p.add_argument("--output", required=True, type=Path, help="output file (.safetensors or .pth)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from satbench.models.export import export_weights

    info = export_weights(load_from_args(args), args.output, args.format)
    print(f"wrote {info['tensors']} tensors of {info['model']} to {info['path']} ({args.format})")
    return 0
