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

#: satbench's bound on the patch grid, in patches per side, for every backbone (its own, not an official number).
#: 160 x 160 = 25,600 tokens: just above the largest grid SatDINO's official pos-embed interpolation accepts at any
#: released patch size (ViT-S/8: 156 per side; ViT-S/16: 39), 2,560 px at patch 16. Beyond it one image's matmul
#: attention scores alone exceed 2.6 GB per head in float32, so no batch of a ViT-L fits a single accelerator.
MAX_GRID_SIDE = 160


def check_input_grid(what: str, patch_size: int, height: int, width: int, max_grid: int) -> None:
    """The shared bounds of ``check_input_size``: at least one patch per side, at most ``max_grid`` patches per side
    (the patch embedding floors, so e.g. 630 px at patch 16 is 39 patches)."""
    from ..errors import InputSizeError

    if min(height, width) < patch_size:
        raise InputSizeError(f"input {height} x {width} px is smaller than one {patch_size}-px patch of {what}")
    if max(height, width) // patch_size > max_grid:
        raise InputSizeError(f"input {height} x {width} px is larger than {what} accepts (at most {max_grid} patches of "
                             f"{patch_size} px per side, {max_grid * patch_size} px)")


def check_input_size(model: nn.Module, height: int, width: int) -> None:
    """Raise :class:`~satbench.errors.InputSizeError` when ``model`` cannot take a ``height x width`` input.

    Every satbench backbone implements ``check_input_size(height, width)`` and ``max_input_size()`` (the largest side
    in px, a multiple of the patch size); a module without them gets the generic bounds (one patch ..
    :data:`MAX_GRID_SIDE` patches per side).
    Callers run it on the sizes a protocol asks for *before* any image is decoded.
    """
    own = getattr(model, "check_input_size", None)
    if callable(own):
        own(int(height), int(width))
        return
    patch = int(getattr(model, "patch_size", 16))
    check_input_grid(type(model).__name__, patch, int(height), int(width), MAX_GRID_SIDE)


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
