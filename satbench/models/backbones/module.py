"""Your own ``nn.Module`` as a satbench backbone: :func:`wrap` (Python) and :func:`register_module` (plug-ins, CLI).

``satbench.wrap(module, patch_size=16, normalization="imagenet", tokens="cls+patches")`` (:mod:`satbench.models.wrap`)
puts a module in :class:`WrappedBackbone` and returns a :class:`~satbench.models.weights.LoadedModel` that
``satbench.run``, ``compare`` and the leaderboard take. What the module returns is declared, never guessed
(``tokens``):

* a token layout (``"cls+patches"``, ``"cls+4reg+patches"``, ``"patches"``): ``module(x)`` returns the final-normed
  tokens ``[B, prefix + N, D]`` in that order; the feature is the recorded ``pool`` (``cls`` | ``avg`` | ``cls+avg``,
  default ``cls`` when there is a CLS token, else ``avg``);
* ``"pooled"``: ``module(x)`` returns the feature ``[B, D]`` itself (recorded as ``pool: module``).

Records carry the module's class path (``weights.extras.module_class``) and the sha256 of its state dict
(:func:`state_dict_sha256`) as the weights identity (``weights.source: module``): two different weights never share a
record identity. Family ``module`` (``--model module:<name>``) builds modules registered by :func:`register_module`
in a plug-in named in ``$SATBENCH_PLUGINS``.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor, nn

from satbench.data.normalization import PRESETS, Normalization, get_normalization, register_normalization
from satbench.errors import SatbenchError, UnknownNameError, WeightsError
from satbench.models.backbones.base import (
    MAX_GRID_SIDE, BackboneOutput, Family, OptionSpec, check_input_grid, register_family
)
from satbench.models.backbones.tokens import POOLS, TokenLayout, check_pool, pool_dim, pool_tokens
from satbench.models.cards import ModelCard
from satbench.models.checkpoints import tensors_sha256

PREFIX = "module:"
POOLED = "pooled"
_LAYOUT_RE = re.compile(r"^(?:(cls)\+)?(?:(\d+)(reg|gsd)\+)?patches$")


def parse_tokens(tokens: str) -> Optional[TokenLayout]:
    """``"cls+4reg+patches"`` -> :class:`TokenLayout`; ``"pooled"`` -> None."""
    if tokens == POOLED:
        return None
    m = _LAYOUT_RE.match(str(tokens))
    if not m:
        raise SatbenchError(f"tokens must be 'pooled' or a layout like 'cls+patches', 'cls+4reg+patches', 'patches'; "
                            f"got {tokens!r}")
    return TokenLayout(cls=1 if m.group(1) else 0, registers=int(m.group(2) or 0),
                       register_kind="gsd" if m.group(3) == "gsd" else "register")


def class_path(module: nn.Module) -> str:
    """``package.module.ClassName`` of ``module``."""
    t = type(module)
    return f"{t.__module__}.{t.__qualname__}"


def state_dict_sha256(module: nn.Module) -> str:
    """sha256 over the module's state dict (:func:`satbench.models.checkpoints.tensors_sha256`: every key, sorted,
    with its dtype, shape and bytes): the same identity a loaded checkpoint gets as ``weights.tensors_sha256``."""
    return tensors_sha256(module.state_dict())


def normalization_name(spec: Any, name: str) -> str:
    """A preset name for ``spec``: a preset name, a :class:`Normalization`, or ``(mean, std)``."""
    if isinstance(spec, str):
        return get_normalization(spec).name
    if isinstance(spec, Normalization):
        norm = spec
    elif isinstance(spec, (tuple, list)) and len(spec) == 2:
        norm = Normalization(f"{PREFIX}{name}", tuple(spec[0]), tuple(spec[1]))  # type: ignore[arg-type]
    else:
        raise SatbenchError(f"wrap({name}): normalization must be a preset name (e.g. 'imagenet'), a Normalization or "
                            f"(mean, std) in [0, 1] units, got {spec!r}")
    if norm.name not in PRESETS:
        register_normalization(norm)
    return norm.name


class WrappedBackbone(nn.Module):
    """A user module with satbench's backbone interface; its parameters live under ``inner.``."""

    def __init__(self, inner: nn.Module, *, patch_size: int, layout: Optional[TokenLayout], pool: str) -> None:
        super().__init__()
        self.inner = inner
        self._patch = int(patch_size)
        self.layout = layout
        self.feature_pool = pool
        self.embed_dim = 0
        self.depth = 0

    @property
    def patch_size(self) -> int:
        return self._patch

    @property
    def options(self) -> dict[str, Any]:
        return {"module_class": class_path(self.inner), "tokens": self.layout.describe() if self.layout else POOLED,
                "pool": self.feature_pool}

    @property
    def feature_dim(self) -> int:
        return self.embed_dim if self.layout is None else pool_dim(self.embed_dim, self.feature_pool)

    def max_input_size(self) -> int:
        return MAX_GRID_SIDE * self._patch

    def check_input_size(self, height: int, width: int) -> None:
        from satbench.errors import InputSizeError

        what = f"module {class_path(self.inner)}"
        check_input_grid(what, self._patch, height, width, MAX_GRID_SIDE)
        if height % self._patch or width % self._patch:
            raise InputSizeError(f"input {height} x {width} px is not a whole number of {self._patch}-px patches of "
                                 f"{what}; for kNN pass --size-rule floor or crop (recorded)")

    def _tokens(self, x: Tensor) -> Tensor:
        out = self.inner(x)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if not isinstance(out, Tensor):
            raise SatbenchError(f"module {class_path(self.inner)} returned {type(out).__name__}, expected a Tensor")
        return out

    def forward_features(self, x: Tensor, *, layers: Sequence[int] = (), norm_layers: bool = True,
                         input_res: Any = None) -> BackboneOutput:
        """The declared feature, and the patch tokens when the module returns tokens."""
        if layers:
            raise SatbenchError(f"module {class_path(self.inner)}: a wrapped module gives no intermediate layers")
        if input_res is not None:
            raise SatbenchError("a wrapped module takes no input_res")
        out = self._tokens(x)
        grid = (x.shape[-2] // self._patch, x.shape[-1] // self._patch)
        where = f"module {class_path(self.inner)}"
        if self.layout is None:
            if out.ndim != 2:
                raise SatbenchError(f"{where}: tokens='pooled' needs a [B, D] output, got {tuple(out.shape)}")
            return BackboneOutput(cls=out, patches=out[:, None, :], register=None, grid=(1, 1))
        n = grid[0] * grid[1]
        if out.ndim != 3 or out.shape[1] != self.layout.prefix + n:
            raise SatbenchError(f"{where}: tokens {self.layout.describe()!r} at {x.shape[-2]} x {x.shape[-1]} px means "
                                f"[B, {self.layout.prefix} + {n}, D] outputs, got {tuple(out.shape)}")
        return BackboneOutput(cls=pool_tokens(out, self.layout, self.feature_pool, where),
                              patches=out[:, self.layout.prefix:], register=None, grid=grid)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x).cls


def _embed_dim(wrapped: WrappedBackbone) -> int:
    """The token width, from one forward pass of a zero image of 2 x 2 patches (on the module's device)."""
    p = next(iter(wrapped.parameters()), None)
    device = p.device if p is not None else torch.device("cpu")
    was = wrapped.training
    wrapped.eval()
    with torch.no_grad():
        out = wrapped._tokens(torch.zeros(1, 3, 2 * wrapped.patch_size, 2 * wrapped.patch_size, device=device))
    wrapped.train(was)
    return int(out.shape[-1])


def wrapped_backbone(module: nn.Module, patch_size: int, tokens: str, pool: Optional[str], where: str) -> WrappedBackbone:
    if not isinstance(module, nn.Module):
        raise SatbenchError(f"{where}: expected a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(patch_size, int) or isinstance(patch_size, bool) or patch_size <= 0:
        raise SatbenchError(f"{where}: patch_size must be a positive int, got {patch_size!r}")
    layout = parse_tokens(tokens)
    if layout is None:
        if pool not in (None, "module"):
            raise SatbenchError(f"{where}: tokens='pooled' modules pool themselves; pool must be left out")
        chosen = "module"
    else:
        chosen = check_pool(pool or ("cls" if layout.cls else "avg"), layout, where)
    w = WrappedBackbone(module, patch_size=patch_size, layout=layout, pool=chosen)
    w.embed_dim = _embed_dim(w)
    return w


def module_card(name: str, w: WrappedBackbone, norm: str, img_size: int) -> ModelCard:
    return ModelCard(name=name, family="module", patch_size=w.patch_size, embed_dim=w.embed_dim, depth=0,
                     feature_dim=w.feature_dim, normalization=norm, arch=class_path(w.inner), img_size=img_size,
                     description=f"wrapped module {class_path(w.inner)}; tokens {w.options['tokens']}",
                     feature=w.feature_pool)


# --------------------------------------------------------------------------------------------------------------------
# Plug-ins: --model module:<name>
# --------------------------------------------------------------------------------------------------------------------
_REGISTERED: dict[str, dict[str, Any]] = {}


def register_module(name: str, factory: Callable[[], nn.Module], *, patch_size: int, normalization: Any,
                    tokens: str = "cls+patches", pool: Optional[str] = None, img_size: int = 224) -> str:
    """Make ``--model module:<name>`` build ``factory()`` (call it in a ``$SATBENCH_PLUGINS`` module). Weights come
    from ``--weights FILE`` (a state dict of the module's own keys, strict) or ``--weights random``. Returns the name."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name or ""):
        raise SatbenchError(f"register_module: name must be letters, digits, '_', '.', '-', got {name!r}")
    _REGISTERED[name] = dict(factory=factory, patch_size=patch_size, normalization=normalization, tokens=tokens,
                             pool=pool, img_size=img_size)
    return f"{PREFIX}{name}"


def _entry(card_name: str) -> dict[str, Any]:
    key = card_name[len(PREFIX):] if card_name.startswith(PREFIX) else card_name
    if key not in _REGISTERED:
        from satbench.errors import close_matches

        raise UnknownNameError(f"model {card_name!r}: no module registered under {key!r}"
                               f"{close_matches(key, sorted(_REGISTERED))}; a plug-in (named in $SATBENCH_PLUGINS, "
                               "importable: on PYTHONPATH or installed) must call "
                               "satbench.models.backbones.module.register_module(...)")
    return _REGISTERED[key]


def _dynamic_card(card_name: str) -> ModelCard:
    e = _entry(card_name)
    w = wrapped_backbone(e["factory"](), e["patch_size"], e["tokens"], e["pool"], f"model {card_name}")
    return module_card(card_name, w, normalization_name(e["normalization"], card_name), e["img_size"])


def _build(card: ModelCard, **options: Any) -> nn.Module:
    e = _entry(card.name)
    pool = options.get("pool") or e["pool"]
    return wrapped_backbone(e["factory"](), e["patch_size"], e["tokens"], pool, f"model {card.name}")


def _state_dict(obj: Any, card: ModelCard) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The module's own keys, put under the wrapper's ``inner.``."""
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, Tensor) for v in obj.values()):
        from satbench.models.checkpoints import nesting_hint

        raise WeightsError(f"{card.name}: expected a state dict of the module's own keys{nesting_hint(obj)}")
    return {f"inner.{k}": v for k, v in obj.items()}, {}


register_family(Family(
    "module", _build, _state_dict,
    options={"pool": OptionSpec(str, POOLS, None, "for token outputs: cls | avg | cls+avg"),
             "module_class": OptionSpec(str), "tokens": OptionSpec(str)},
    name_prefix=PREFIX, dynamic_card=_dynamic_card,
    naming="module:<name> after register_module(<name>, ...) in a $SATBENCH_PLUGINS module; in Python: "
           "satbench.wrap(module, patch_size=..., normalization=...)",
    about="your own nn.Module, its token groups and pooling declared; weights identity = its state dict's sha256",
    requires=("torch",),
))

__all__ = ["register_module", "wrapped_backbone", "module_card", "state_dict_sha256", "class_path", "parse_tokens", "WrappedBackbone"]
