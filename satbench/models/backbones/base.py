"""The uniform backbone interface every family implements.

A backbone is an ``nn.Module`` with official state-dict key names and:

* ``forward(x) -> Tensor[B, D]``: the family's official feature (the normed CLS token);
* ``forward_features(x, layers=(), norm_layers=True, input_res=None) -> BackboneOutput``;
* attributes ``embed_dim``, ``patch_size``, ``depth`` and ``options`` (a dict of the numerics-changing
  choices this instance was built with; it is recorded in every result).

Inputs are already normalised images ``[B, 3, H, W]``; normalisation belongs to
:class:`satbench.models.features.FeatureExtractor`, the only public way to run a backbone on images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from torch import Tensor, nn

from satbench.errors import SatbenchError


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


@dataclass(frozen=True)
class OptionSpec:
    """A build option a family accepts in a card's ``options:`` or from the command line.

    ``choices``: the allowed values (empty: any value of ``type``); ``default``: the official behaviour.
    """

    type: type = str
    choices: tuple[Any, ...] = ()
    default: Any = None
    doc: str = ""

    def check(self, key: str, value: Any, where: str) -> None:
        ok_type = isinstance(value, self.type) and not (self.type is not bool and isinstance(value, bool))
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            ok_type = True
        if not ok_type or (self.choices and value not in self.choices):
            want = f"one of {', '.join(map(repr, self.choices))}" if self.choices else f"a {self.type.__name__}"
            raise SatbenchError(f"{where}: option {key} must be {want}, got {value!r}")


@dataclass(frozen=True)
class Family:
    """One backbone family: how to build it, how to read its checkpoints, and what it can do.

    build(card, **options) -> nn.Module
    state_dict_from_checkpoint(obj, card) -> (backbone_state_dict, extras) where ``extras`` may hold
        e.g. ``{"linear_head": {...}}``. It raises :class:`satbench.errors.WeightsError` when ``obj``
        is not a checkpoint of this family.

    Capabilities (read by the rest of satbench instead of branching on a family's name):
    options: build options it accepts (``attn_impl``, ``pos_interp``, ``pool``...) with their allowed values.
    input_res_policies: the ``input_res`` policies of a kNN protocol it accepts (``none`` only, unless its
        positional encoding is GSD-aware); :meth:`input_res` turns a policy into the ratio for an input size.
    layer_decay_embedding_names: parameters that get layer id 0 in layer-wise lr decay (token / embedding names).
    no_weight_decay_names: parameter names excluded from weight decay in layer-wise decay.
    key_prefixes: checkpoint key prefixes stripped when reading weights.
    name_prefix / dynamic_card: names like ``timm:<model>`` resolve to cards made at run time by ``dynamic_card``.
    check_card(card, where): family-specific consistency of a card (dimensions vs arch...), raising SatbenchError.
    default_weights(card, kind): the ``--weights`` spec used when none is given (a snapshot folder, ``hf:...``), or
        None for the card's own weight entry through the satbench cache (every family but ``hf-transformers``).

    What ``satbench models --families`` lists (:mod:`satbench.models.family_table`, which reads these from the family
    modules' source without importing torch, so write them as literals or module-level string constants):
    naming: how a user names its models (default: ``<name_prefix><name>``, or a model card of this family);
    about: one line on what it is; extra: the pip extra that installs what it needs ("" = satbench's own
    dependencies); requires: the top-level modules it imports beyond satbench's core (checked with
    ``importlib.util.find_spec``, never imported, for the "installed" column).
    """

    name: str
    build: Callable[..., nn.Module]
    state_dict_from_checkpoint: Callable[[Any, Any], tuple[dict[str, Tensor], dict[str, Any]]]
    options: dict[str, OptionSpec] = field(default_factory=dict)
    input_res_policies: tuple[str, ...] = ("none",)
    input_res_fn: Optional[Callable[[str, int], Optional[float]]] = None
    layer_decay_embedding_names: tuple[str, ...] = ("cls_token", "pos_embed", "patch_embed")
    no_weight_decay_names: tuple[str, ...] = ("cls_token", "pos_embed")
    key_prefixes: tuple[str, ...] = ("module.",)
    name_prefix: str = ""
    dynamic_card: Optional[Callable[[str], Any]] = None
    check_card: Optional[Callable[[Any, str], None]] = None
    default_weights: Optional[Callable[[Any, str], Optional[str]]] = None
    naming: str = ""
    about: str = ""
    extra: str = ""
    requires: tuple[str, ...] = ()

    @property
    def takes_input_res(self) -> bool:
        """Whether the backbone's forward takes a ground-resolution ratio (``input_res``)."""
        return any(p != "none" for p in self.input_res_policies)

    def input_res(self, policy: str, size: int) -> Optional[float]:
        """The ``input_res`` for an input of ``size`` px under ``policy`` (None for policy ``none``)."""
        from satbench.errors import ProtocolError

        policy = str(policy)
        if policy not in self.input_res_policies:
            raise ProtocolError(f"input_res policy {policy!r} does not apply to {self.name} backbones "
                                f"(they accept: {', '.join(self.input_res_policies)})")
        if policy == "none" or self.input_res_fn is None:
            return None
        return self.input_res_fn(policy, size)

    def check_options(self, options: dict[str, Any], where: str) -> None:
        """Every option is one the family declares, with an allowed value."""
        for key, value in options.items():
            spec = self.options.get(key)
            if spec is None:
                known = ", ".join(sorted(self.options)) or "none"
                raise SatbenchError(f"{where}: option {key} is not a build option of the {self.name} family "
                                    f"(it accepts: {known})")
            spec.check(key, value, where)


FAMILIES: dict[str, Family] = {}

#: satbench's bound on the patch grid, in patches per side, for every backbone (its own, not an official number).
#: 160 x 160 = 25,600 tokens: just above the largest grid SatDINO's official pos-embed interpolation accepts at any
#: released patch size (ViT-S/8: 156 per side; ViT-S/16: 39), 2,560 px at patch 16. Beyond it one image's matmul
#: attention scores alone exceed 2.6 GB per head in float32, so no batch of a ViT-L fits a single accelerator.
MAX_GRID_SIDE = 160


#: Attention implementations of satbench's own ViT blocks: the official plain matmul (exact) or torch's fused SDPA.
ATTN_IMPLS = ("matmul", "sdpa")


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    """One line when a build option is not one of its ``choices`` (the families' shared option check)."""
    if value not in choices:
        raise SatbenchError(f"{name} must be one of {choices}, got {value!r}")


def check_input_grid(what: str, patch_size: int, height: int, width: int, max_grid: int) -> None:
    """The shared bounds of ``check_input_size``: at least one patch per side, at most ``max_grid`` patches per side
    (the patch embedding floors, so e.g. 630 px at patch 16 is 39 patches)."""
    from satbench.errors import InputSizeError

    if min(height, width) < patch_size:
        raise InputSizeError(f"input {height} x {width} px is smaller than one {patch_size}-px patch of {what}")
    if max(height, width) // patch_size > max_grid:
        raise InputSizeError(f"input {height} x {width} px is larger than {what} accepts (at most {max_grid} patches of "
                             f"{patch_size} px per side, {max_grid * patch_size} px)")


def check_whole_patches(what: str, patch_size: int, height: int, width: int) -> None:
    """One line for an input that is not a whole number of patches (the patch embeddings assert it), naming the
    ``--size-rule`` that fits it; shared by the families whose patch embedding does not pad."""
    from satbench.errors import InputSizeError

    p = patch_size
    if height % p or width % p:
        raise InputSizeError(f"input {height} x {width} px is not a whole number of {p}-px patches of {what}; for kNN "
                             f"pass --size-rule floor (resize to {height // p * p} px) or --size-rule crop (centre-crop "
                             f"to it), recorded")


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


def get_family(name: str) -> Family:
    """The registered family ``name``; unknown names list the known ones."""
    if name not in FAMILIES:
        from satbench.errors import UnknownNameError, close_matches

        raise UnknownNameError(f"unknown backbone family {name!r}{close_matches(name, sorted(FAMILIES))}; "
                               f"known: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


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
