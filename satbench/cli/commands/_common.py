"""Argument helpers shared by subcommands (model / weights / device options)."""

from __future__ import annotations

import argparse
from typing import Any

from satbench.config.argtypes import device, positive_int, seed


def add_model_args(p: argparse.ArgumentParser, *, model_required: bool = True, default_model: str | None = None) -> None:
    """``--model``, ``--weights``, ``--allow-unpinned``, ``--seed``, ``--trust-checkpoint``, ``--trust-remote-code``,
    ``--pos-interp``, ``--attn-impl``, ``--pool``."""
    p.add_argument("--model", required=model_required and default_model is None, default=default_model,
                   help="registered model name (see `satbench models`), timm:<name>, or "
                        "hf-transformers:OWNER/REPO[@REVISION] / hf-transformers:<snapshot folder>")
    p.add_argument("--weights", default=None,
                   help="a .pth / .safetensors file, a snapshot folder, hf:OWNER/REPO[@REVISION][/FILE] (through the "
                        "Hugging Face cache; the commit is recorded), or 'random' (seeded init); "
                        "default: the card's official weights from the local cache or the hub")
    p.add_argument("--allow-unpinned", action="store_true",
                   help="load a file whose sha256 differs from the one the model card pins (recorded as unpinned)")
    p.add_argument("--seed", type=seed, default=0, help="seed for --weights random and for training (default 0)")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="load checkpoints that need types outside satbench's safe list (executes pickled code!)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="hf-transformers: build a repository whose config needs trust_remote_code with its own Python "
                        "code (executes it!; recorded in model_options)")
    p.add_argument("--pos-interp", choices=["official", "size"], default=None,
                   help="SatDINO pos-embed interpolation: the official scale-factor formula (default) or plain "
                        "size-based bicubic (allows >= 640 px at patch 16; recorded)")
    p.add_argument("--attn-impl", choices=["matmul", "sdpa"], default=None,
                   help="SatDINO attention: the official plain matmul (default, exact) or torch's fused "
                        "scaled_dot_product_attention (flash kernels on GPUs: much faster in bf16; not bit-identical; "
                        "recorded)")
    p.add_argument("--pool", choices=["cls", "avg", "cls+avg", "head"], default=None,
                   help="the feature: cls = final-normed CLS token, avg = mean of the patch tokens (CLS and registers "
                        "left out), cls+avg = both concatenated (DINOv2's linear eval), head = SigLIP's attention-"
                        "pooling head (hf-transformers); default: the card's (recorded)")


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
    if getattr(args, "pool", None):
        opts["pool"] = args.pool
    if getattr(args, "trust_remote_code", False):
        opts["trust_remote_code"] = True
    return opts


def option_flag(key: str) -> str:
    """The command-line flag of a build option (``attn_impl`` -> ``--attn-impl``)."""
    return "--" + key.replace("_", "-")


def load_from_args(args: argparse.Namespace, kind: str = "pretrain"):
    """Resolve ``--model``/``--weights`` into a :class:`satbench.models.weights.LoadedModel` (:func:`satbench.api.load`)."""
    from satbench.api import load

    return load(args.model, args.weights, seed=args.seed, trust_checkpoint=getattr(args, "trust_checkpoint", False),
                kind=kind, options=model_build_options(args), allow_unpinned=getattr(args, "allow_unpinned", False),
                option_label=option_flag)
