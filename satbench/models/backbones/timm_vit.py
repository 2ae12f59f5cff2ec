"""Any timm Vision Transformer as a satbench backbone: ``--model timm:<model_name>[.<tag>]``.

Covers timm's ``VisionTransformer`` (DeiT, DINO, DINOv2 with and without registers: ``vit_small_patch14_dinov2.lvd142m``,
``vit_small_patch14_reg4_dinov2.lvd142m``...) and timm's ``Eva`` (DINOv3 with RoPE and 4 registers:
``vit_small_patch16_dinov3.lvd1689m``, ``vit_large_patch16_dinov3.sat493m`` with the sat493m mean/std...).

* Token groups are declared, not guessed (:func:`token_layout`): the CLS token from the model's ``cls_token``, the
  registers from its ``reg_token`` (DINOv2-reg and DINOv3: 4), then the patch grid; their sum must equal timm's
  ``num_prefix_tokens``. Pooling is the recorded option ``pool`` (:data:`~satbench.models.backbones.tokens.POOLS`);
  its default per model and why is :func:`default_pool` (DINOv3: ``cls``, as upstream, although timm's Eva pools by
  ``avg``, timm issue #2681; DINOv2: ``cls``, timm's ``global_pool='token'``; other models: timm's own pool).
* Inputs must be whole multiples of the patch (timm asserts it); :meth:`TimmViTBackbone.check_input_size` says so in
  one line before any image is decoded, and the kNN ``size_rule`` option fits protocol sizes to patch 14.

* :func:`card_for` makes a dynamic :class:`~satbench.models.registry.ModelCard` (family ``timm``) from timm's
  registry and pretrained config: dims read from a meta-device build (no memory, no weights), the
  normalisation from the pretrained cfg (``imagenet`` when it is ImageNet's, else a preset named
  ``timm:<model_name>`` is registered), and a ``pretrain`` weights entry pointing at the cfg's Hugging Face
  hub repo (``weights=None`` downloads ``model.safetensors`` through huggingface_hub into the satbench
  cache; offline, the error names the file to place there). ``--weights PATH`` takes a local
  ``.safetensors``/``.pth`` of timm keys.
* The model is ``timm.create_model(name, num_classes=0, dynamic_img_size=True)``; its state-dict keys are
  timm's own. Checkpoints load strictly; only the classifier keys of :data:`TIMM_CLASSIFIER_KEYS` are dropped
  (the backbone is built with ``num_classes=0``), by that explicit list.
* ``forward(x)`` is timm's pre-logits feature (the final-normed CLS for ``global_pool='token'`` models);
  ``forward_features`` maps timm's ``forward_features`` / ``forward_intermediates`` onto
  :class:`~satbench.models.backbones.base.BackboneOutput` (``cls`` = that pooled feature, ``patches`` without the
  prefix tokens, ``register`` None: timm register tokens are not a GSD register).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import torch
from torch import Tensor

from satbench.errors import SatbenchError, UnknownNameError, WeightsError
from satbench.data.normalization import PRESETS, Normalization, register_normalization
from satbench.models.backbones.base import (
    MAX_GRID_SIDE, BackboneOutput, Family, OptionSpec, check_input_grid, check_whole_patches, register_family
)
from satbench.models.backbones.satdino import _check_layers, strip_prefixes
from satbench.models.backbones.tokens import POOLS, TokenLayout, check_pool, pool_dim, pool_tokens

PREFIX = "timm:"
#: Classifier keys dropped from timm checkpoints (satbench builds the backbone with ``num_classes=0``).
TIMM_CLASSIFIER_KEYS: tuple[str, ...] = ("head.weight", "head.bias", "head_dist.weight", "head_dist.bias")
DEFAULT_HUB_FILENAME = "model.safetensors"


def _timm_name(name: str) -> str:
    name = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if not name:
        raise UnknownNameError("model 'timm:' names no timm model; use timm:<model_name>, e.g. timm:vit_small_patch16_224.dino")
    return name


def _vit_class() -> type:
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer


def _vit_classes() -> tuple[type, ...]:
    """The timm classes the family takes: ``VisionTransformer`` and ``Eva`` (DINOv3, EVA-02...)."""
    from timm.models.eva import Eva

    return (_vit_class(), Eva)


def token_layout(model: torch.nn.Module, where: str = "timm model") -> TokenLayout:
    """The prefix tokens of a timm ViT, read from its parameters (``cls_token``, ``reg_token``), checked against
    timm's ``num_prefix_tokens``."""
    cls = 1 if getattr(model, "cls_token", None) is not None else 0
    reg = getattr(model, "reg_token", None)
    registers = int(reg.shape[1]) if reg is not None else 0
    prefix = int(getattr(model, "num_prefix_tokens", cls + registers))
    if cls + registers != prefix:
        raise SatbenchError(f"{where}: {cls} CLS + {registers} register tokens do not add up to timm's "
                            f"num_prefix_tokens {prefix}; satbench cannot tell its token groups apart")
    return TokenLayout(cls=cls, registers=registers, register_kind="register")


def default_pool(name: str, model: torch.nn.Module) -> tuple[str, str]:
    """``(pool, why)``: the family's default pooling for timm model ``name`` and the reason, recorded in the card."""
    arch = name.split(".", 1)[0]
    native = str(getattr(model, "global_pool", ""))
    if "_dinov3" in arch and getattr(model, "cls_token", None) is not None:
        return "cls", (f"upstream DINOv3 uses its final-normed CLS token; timm's Eva default is global_pool="
                       f"{native!r} (timm issue #2681), take it with pool avg")
    if native == "token":
        return "cls", "timm's global_pool='token': the final-normed CLS token"
    if native == "avg":
        return "avg", "timm's global_pool='avg' default for this model: the mean of the patch tokens"
    raise SatbenchError(f"model 'timm:{name}' pools by global_pool={native!r}, which satbench does not reproduce; "
                        f"name a pool (one of {', '.join(POOLS)}) with --pool")


def _create(name: str, *, meta: bool = False) -> torch.nn.Module:
    """``timm.create_model(name, num_classes=0, dynamic_img_size=True)`` (on the meta device when ``meta``)."""
    import timm

    arch = name.split(".", 1)[0]
    if not timm.is_model(arch):
        from satbench.errors import close_matches

        raise UnknownNameError(f"model 'timm:{name}': timm has no model {arch!r}"
                               f"{close_matches(arch, timm.list_models('vit_*'))}")
    try:
        if meta:
            with torch.device("meta"):
                model = timm.create_model(name, pretrained=False, num_classes=0, dynamic_img_size=True)
        else:
            model = timm.create_model(name, pretrained=False, num_classes=0, dynamic_img_size=True)
    except RuntimeError as exc:  # e.g. "Invalid pretrained tag (x) for arch"
        raise UnknownNameError(f"model 'timm:{name}': {str(exc).splitlines()[0]}") from None
    except TypeError as exc:  # a model whose constructor takes no dynamic_img_size
        raise SatbenchError(f"model 'timm:{name}' is not a timm VisionTransformer ({str(exc).splitlines()[0]})") from None
    if not isinstance(model, _vit_classes()):
        raise SatbenchError(f"model 'timm:{name}' is a timm {type(model).__name__}, not a VisionTransformer or Eva; "
                            "the timm: family takes timm ViTs only")
    return model


def _normalization_for(name: str, mean: Sequence[float], std: Sequence[float]) -> str:
    """Preset name for the cfg's statistics: ``imagenet`` when they are ImageNet's, else ``timm:<name>``."""
    mean_t, std_t = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    ref = PRESETS["imagenet"]
    if all(abs(a - b) < 1e-6 for a, b in zip(mean_t + std_t, ref.mean + ref.std)):
        return "imagenet"
    preset = f"{PREFIX}{name}"
    if preset not in PRESETS:
        register_normalization(Normalization(preset, mean_t, std_t))  # type: ignore[arg-type]
    return preset


@lru_cache(maxsize=None)
def card_for(name: str) -> Any:
    """The dynamic card for ``timm:<model_name>`` (family ``timm``)."""
    from timm.models import get_pretrained_cfg

    from satbench.models.cards import ModelCard

    tname = _timm_name(name)
    model = _create(tname, meta=True)
    try:
        cfg = get_pretrained_cfg(tname)
    except RuntimeError as exc:
        raise UnknownNameError(f"model 'timm:{tname}': {str(exc).splitlines()[0]}") from None
    mean = getattr(cfg, "mean", None) or PRESETS["imagenet"].mean
    std = getattr(cfg, "std", None) or PRESETS["imagenet"].std
    weights: dict[str, dict[str, Any]] = {}
    if cfg is not None and cfg.hf_hub_id:
        weights["pretrain"] = {"hf_repo": cfg.hf_hub_id, "filename": cfg.hf_hub_filename or DEFAULT_HUB_FILENAME}
    img_size = int(cfg.input_size[-1]) if cfg is not None and cfg.input_size else 224
    pool, why = default_pool(tname, model)
    layout = token_layout(model, f"model 'timm:{tname}'")
    return ModelCard(
        name=f"{PREFIX}{tname}",
        family="timm",
        arch=tname,
        patch_size=int(model.patch_embed.patch_size[0]),
        embed_dim=int(model.embed_dim),
        depth=len(model.blocks),
        num_heads=int(model.blocks[0].attn.num_heads) if len(model.blocks) else 0,
        img_size=img_size,
        feature_dim=pool_dim(int(model.num_features), pool),
        normalization=_normalization_for(tname, mean, std),
        description=(f"timm {tname} (num_classes=0, dynamic_img_size=True); tokens {layout.describe()}; "
                     f"default pool {pool}: {why}"),
        feature=pool,
        weights=weights,
        license=str(getattr(cfg, "license", "") or ""),
    )


class TimmViTBackbone:
    """Mixin giving a timm ``VisionTransformer`` instance satbench's backbone interface (keys unchanged)."""

    timm_name: str
    feature_pool: str  # not ``pool``: timm's Eva has a ``pool`` method
    layout: TokenLayout

    @property
    def options(self) -> dict[str, Any]:
        return {"timm_model": self.timm_name, "dynamic_img_size": True, "global_pool": self.global_pool,
                "pool": self.feature_pool, "tokens": self.layout.describe()}

    @property
    def feature_dim(self) -> int:
        return pool_dim(int(self.num_features), self.feature_pool)

    def _timm_base(self) -> type:
        return next(c for c in type(self).__mro__ if c in _vit_classes())

    def _pooled(self, final: Tensor) -> Tensor:
        """The ``pool`` feature of the final-normed tokens. Where ``pool`` is timm's own pool (``cls`` with
        ``global_pool='token'``, ``avg`` with ``global_pool='avg'``), timm's ``forward_head`` gives it (with the
        model's ``fc_norm``); otherwise :func:`~satbench.models.backbones.tokens.pool_tokens`."""
        native = {"token": "cls", "avg": "avg"}.get(str(self.global_pool))
        if native == self.feature_pool:
            return self.forward_head(final, pre_logits=True)
        return pool_tokens(final, self.layout, self.feature_pool, f"timm {self.timm_name}")

    @property
    def patch_size(self) -> int:
        return int(self.patch_embed.patch_size[0])

    @property
    def depth(self) -> int:
        return len(self.blocks)

    def max_input_size(self) -> int:
        """Largest input side in px: satbench's :data:`~.base.MAX_GRID_SIDE` patches (timm resamples its pos_embed)."""
        return MAX_GRID_SIDE * self.patch_size

    def check_input_size(self, height: int, width: int) -> None:
        """Raise :class:`~satbench.errors.InputSizeError` for an input this ViT cannot take (before any decode):
        outside the grid bounds, or not a whole number of patches (timm's patch embedding asserts it)."""
        check_input_grid(f"timm {self.timm_name}", self.patch_size, height, width, MAX_GRID_SIDE)
        if not getattr(self.patch_embed, "dynamic_img_pad", False):
            check_whole_patches(f"timm {self.timm_name}", self.patch_size, height, width)

    def _grid(self, x: Tensor) -> tuple[int, int]:
        gh, gw = self.patch_embed.dynamic_feat_size(tuple(x.shape[-2:]))
        return int(gh), int(gw)

    def forward_features(self, x: Tensor, *, layers: Sequence[int] = (), norm_layers: bool = True,
                         input_res: Any = None) -> BackboneOutput:
        """timm tokens as :class:`BackboneOutput`: pooled feature, patch tokens, chosen block outputs."""
        if input_res is not None:
            raise SatbenchError("timm ViTs take no input_res (their positional embedding is not GSD-scaled)")
        base = self._timm_base()
        wanted = sorted(_check_layers(layers, self.depth))
        taken: dict[int, Tensor] = {}
        if wanted:
            final, inter = base.forward_intermediates(self, x, indices=wanted, norm=norm_layers, output_fmt="NLC")
            taken = dict(zip(wanted, inter))
        else:
            final = base.forward_features(self, x)
        npt = self.layout.prefix
        return BackboneOutput(cls=self._pooled(final), patches=final[:, npt:], register=None,
                              layers=taken, grid=self._grid(x))

    def forward(self, x: Tensor) -> Tensor:
        """The ``pool`` feature ``[B, D]`` (``[B, 2D]`` for ``cls+avg``)."""
        return self._pooled(self._timm_base().forward_features(self, x))


@lru_cache(maxsize=None)
def _backbone_class(base: type) -> type:
    return type(f"Satbench{base.__name__}", (TimmViTBackbone, base), {})


def build_timm(card: Any, **options: Any) -> torch.nn.Module:
    """Build the card's timm ViT (random init; weights come through :func:`satbench.models.weights.load_model`)."""
    unknown = sorted(set(options) - {"timm_model", "dynamic_img_size", "global_pool", "pool", "tokens"})
    if unknown:
        raise SatbenchError(f"model {card.name}: unknown build options for the timm family: {', '.join(unknown)}")
    name = _timm_name(card.name)
    model = _create(name)
    layout = token_layout(model, f"model {card.name}")
    if options.get("tokens") not in (None, layout.describe()):
        raise SatbenchError(f"model {card.name}: option tokens {options['tokens']!r} is not this model's token "
                            f"layout {layout.describe()}")
    pool = options.get("pool") or default_pool(name, model)[0]
    model.__class__ = _backbone_class(type(model))
    model.timm_name = name
    model.layout = layout
    model.feature_pool = check_pool(str(pool), layout, f"model {card.name}")
    return model


def timm_state_dict_from_checkpoint(obj: Any, card: Any) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """A timm-key state dict from a bare dict, ``{'model': ...}`` or ``{'state_dict': ...}``; classifier dropped."""
    if not isinstance(obj, dict):
        raise WeightsError(f"{card.name}: expected a state dict, got {type(obj).__name__}")
    sd = obj
    for key in ("model", "state_dict"):
        if key in obj and isinstance(obj[key], dict):
            sd = obj[key]
            break
    if not sd or not all(isinstance(v, Tensor) for v in sd.values()):
        raise WeightsError(f"{card.name}: no state dict of timm keys in the checkpoint "
                           f"(top-level keys: {', '.join(sorted(map(str, obj))[:8])})")
    sd = strip_prefixes(sd, ("module.",))
    dropped = sorted(k for k in sd if k in TIMM_CLASSIFIER_KEYS)
    kept = {k: v for k, v in sd.items() if k not in TIMM_CLASSIFIER_KEYS}
    return kept, {"dropped_classifier_keys": len(dropped)}


register_family(Family(
    "timm", build_timm, timm_state_dict_from_checkpoint,
    options={"timm_model": OptionSpec(str), "dynamic_img_size": OptionSpec(bool, (True,), True),
             "global_pool": OptionSpec(str),
             "pool": OptionSpec(str, POOLS, None, "cls | avg | cls+avg; default per model (timm_vit.default_pool)"),
             "tokens": OptionSpec(str, (), None, "the token layout, e.g. cls+4reg+patches (checked, not chosen)")},
    layer_decay_embedding_names=("cls_token", "pos_embed", "reg_token", "patch_embed"),
    no_weight_decay_names=("cls_token", "pos_embed", "reg_token"),
    name_prefix=PREFIX,
    dynamic_card=lambda name: card_for(name),
    naming="timm:<name>, any timm ViT-like model (e.g. timm:vit_small_patch16_224.dino, "
           "timm:vit_small_patch14_reg4_dinov2.lvd142m)",
    about="timm VisionTransformer models (DINO, DINOv2 with and without registers, ...), pool and tokens declared",
    requires=("timm",),
))

__all__ = ["card_for", "build_timm", "timm_state_dict_from_checkpoint", "TIMM_CLASSIFIER_KEYS", "TimmViTBackbone",
           "token_layout", "default_pool"]
