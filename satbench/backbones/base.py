"""The uniform backbone interface every family implements.

A backbone is an ``nn.Module`` with official state-dict key names and:

* ``forward(x) -> Tensor[B, D]``: the family's official feature (the normed CLS token);
* ``forward_features(x, layers=(), norm_layers=True, input_res=None) -> BackboneOutput``;
* attributes ``embed_dim``, ``patch_size``, ``depth`` and ``options`` (a dict of the numerics-changing
  choices this instance was built with; it is recorded in every result).

Inputs are already normalised images ``[B, 3, H, W]``; normalisation belongs to
:class:`satbench.features.FeatureExtractor`, the only public way to run a backbone on images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn


@dataclass
class BackboneOutput:
    """What one forward pass yields.

    cls: ``[B, D]`` final-normed CLS token (the kNN / linear feature).
    patches: ``[B, N, D]`` final-normed patch tokens, row-major, CLS and register removed.
    register: ``[B, D]`` final-normed GSD register token, or None for families without one.
    layers: block index (0-based) -> ``[B, N, D]`` patch tokens after that block (CLS/register removed;
        passed through the final norm when ``norm_layers`` was set).
    grid: (rows, cols) of the patch grid.
    """

    cls: Tensor
    patches: Tensor
    register: Optional[Tensor]
    layers: dict[int, Tensor] = field(default_factory=dict)
    grid: tuple[int, int] = (0, 0)


@dataclass
class Family:
    """How to build one family's backbone from a card and pull its weights out of a checkpoint.

    build(card, **options) -> nn.Module
    state_dict_from_checkpoint(obj, card) -> (backbone_state_dict, extras) where ``extras`` may hold
        e.g. ``{"linear_head": {...}}``. It raises :class:`satbench.errors.WeightsError` when ``obj``
        is not a checkpoint of this family.
    """

    name: str
    build: Callable[..., nn.Module]
    state_dict_from_checkpoint: Callable[[Any, Any], tuple[dict[str, Tensor], dict[str, Any]]]


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Register a backbone family under ``family.name``."""
    FAMILIES[family.name] = family
    return family


def count_params(model: nn.Module, exclude: tuple[str, ...] = ()) -> int:
    """Number of parameters, leaving out those whose name is in ``exclude``."""
    return sum(p.numel() for n, p in model.named_parameters() if n not in exclude)


def linear_conv_gflops(model: nn.Module, img_size: int) -> float:
    """GFLOPs as the SatDINO paper counts them: 2 x the MACs of Linear and Conv2d modules at one image
    of ``img_size`` px (attention matmuls, norms and activations left out). See spec section 1.3."""
    macs = 0

    def lin_hook(mod: nn.Linear, inp, out):
        nonlocal macs
        macs += out.numel() // out.shape[-1] * mod.in_features * mod.out_features

    def conv_hook(mod: nn.Conv2d, inp, out):
        nonlocal macs
        k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
        macs += out.numel() * k

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(lin_hook))
        elif isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(1, 3, img_size, img_size, device=device))
    finally:
        for h in hooks:
            h.remove()
    return 2 * macs / 1e9
