"""Argument helpers shared by subcommands (model / weights / device options)."""

from __future__ import annotations

import argparse
from typing import Any

from ..argtypes import device, positive_float, positive_int, seed  # noqa: F401 (re-exported)
from ..errors import SatbenchError


def add_model_args(p: argparse.ArgumentParser, *, model_required: bool = True, default_model: str | None = None) -> None:
    """``--model``, ``--weights``, ``--seed``, ``--trust-checkpoint``, ``--pos-interp``, ``--attn-impl``."""
    p.add_argument("--model", required=model_required and default_model is None, default=default_model,
                   help="registered model name (see `satbench models`) or timm:<name>")
    p.add_argument("--weights", default=None,
                   help="a .pth / .safetensors file, a snapshot folder, or 'random' (seeded init); "
                        "default: the card's official weights from the local cache or the hub")
    p.add_argument("--seed", type=seed, default=0, help="seed for --weights random and for training (default 0)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="load checkpoints that need types outside satbench's safe list (executes pickled code!)")
    p.add_argument("--pos-interp", choices=["official", "size"], default=None,
                   help="SatDINO pos-embed interpolation: the official scale-factor formula (default) or plain "
                        "size-based bicubic (allows >= 640 px at patch 16; recorded)")
    p.add_argument("--attn-impl", choices=["matmul", "sdpa"], default=None,
                   help="SatDINO attention: the official plain matmul (default, exact) or torch's fused "
                        "scaled_dot_product_attention (flash kernels on GPUs: much faster in bf16; not bit-identical; "
                        "recorded)")


def add_device_args(p: argparse.ArgumentParser) -> None:
    """``--device``, ``--bf16``, ``--batch-size``."""
    p.add_argument("--device", type=device, default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (off by default: exactness first; recorded)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per forward pass (default 64)")


def model_build_options(args: argparse.Namespace) -> dict[str, Any]:
    """Backbone build options chosen on the command line."""
    opts: dict[str, Any] = {}
    if getattr(args, "pos_interp", None):
        opts["pos_interp"] = args.pos_interp
    if getattr(args, "attn_impl", None):
        opts["attn_impl"] = args.attn_impl
    return opts


def load_from_args(args: argparse.Namespace, kind: str = "pretrain"):
    """Resolve ``--model``/``--weights`` into a :class:`satbench.weights.LoadedModel`."""
    from ..registry import get_card
    from ..weights import load_model

    from ..backbones import FAMILIES

    card = get_card(args.model)
    opts = model_build_options(args)
    family = FAMILIES[card.family]
    for key in opts:
        if key not in family.options:
            raise SatbenchError(f"--{key.replace('_', '-')} does not apply to {card.name}: the {family.name} family "
                                f"has no {key} option (its options: {', '.join(sorted(family.options)) or 'none'})")
    family.check_options(opts, f"model {card.name}")
    return load_model(card, args.weights, kind=kind, seed=args.seed,
                      trust_checkpoint=getattr(args, "trust_checkpoint", False), **opts)
