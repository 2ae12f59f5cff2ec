"""Any timm Vision Transformer as a satbench backbone: ``--model timm:<model_name>[.<tag>]``.

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
    MAX_GRID_SIDE, BackboneOutput, Family, OptionSpec, check_input_grid, register_family
)
from satbench.models.backbones.satdino import _check_layers, strip_prefixes

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
    if not isinstance(model, _vit_class()):
        raise SatbenchError(f"model 'timm:{name}' is a timm {type(model).__name__}, not a VisionTransformer; "
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
    return ModelCard(
        name=f"{PREFIX}{tname}",
        family="timm",
        arch=tname,
        patch_size=int(model.patch_embed.patch_size[0]),
        embed_dim=int(model.embed_dim),
        depth=len(model.blocks),
        num_heads=int(model.blocks[0].attn.num_heads) if len(model.blocks) else 0,
        img_size=img_size,
        feature_dim=int(model.num_features),
        normalization=_normalization_for(tname, mean, std),
        description=f"timm {tname} (num_classes=0, dynamic_img_size=True)",
        feature="cls" if model.global_pool == "token" else str(model.global_pool),
        weights=weights,
        license=str(getattr(cfg, "license", "") or ""),
    )


class TimmViTBackbone:
    """Mixin giving a timm ``VisionTransformer`` instance satbench's backbone interface (keys unchanged)."""

    timm_name: str

    @property
    def options(self) -> dict[str, Any]:
        return {"timm_model": self.timm_name, "dynamic_img_size": True, "global_pool": self.global_pool}

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
        """Raise :class:`~satbench.errors.InputSizeError` for an input this ViT cannot take (before any decode)."""
        check_input_grid(f"timm {self.timm_name}", self.patch_size, height, width, MAX_GRID_SIDE)

    def _grid(self, x: Tensor) -> tuple[int, int]:
        gh, gw = self.patch_embed.dynamic_feat_size(tuple(x.shape[-2:]))
        return int(gh), int(gw)

    def forward_features(self, x: Tensor, *, layers: Sequence[int] = (), norm_layers: bool = True,
                         input_res: Any = None) -> BackboneOutput:
        """timm tokens as :class:`BackboneOutput`: pooled feature, patch tokens, chosen block outputs."""
        if input_res is not None:
            raise SatbenchError("timm ViTs take no input_res (their positional embedding is not GSD-scaled)")
        base = _vit_class()
        wanted = sorted(_check_layers(layers, self.depth))
        taken: dict[int, Tensor] = {}
        if wanted:
            final, inter = base.forward_intermediates(self, x, indices=wanted, norm=norm_layers, output_fmt="NLC")
            taken = dict(zip(wanted, inter))
        else:
            final = base.forward_features(self, x)
        npt = self.num_prefix_tokens
        return BackboneOutput(cls=self.forward_head(final, pre_logits=True), patches=final[:, npt:], register=None,
                              layers=taken, grid=self._grid(x))

    def forward(self, x: Tensor) -> Tensor:
        """timm's pre-logits feature ``[B, D]`` (the final-normed CLS token for token-pooled ViTs)."""
        return self.forward_head(_vit_class().forward_features(self, x), pre_logits=True)


@lru_cache(maxsize=None)
def _backbone_class(base: type) -> type:
    return type(f"Satbench{base.__name__}", (TimmViTBackbone, base), {})


def build_timm(card: Any, **options: Any) -> torch.nn.Module:
    """Build the card's timm ViT (random init; weights come through :func:`satbench.models.weights.load_model`)."""
    unknown = sorted(set(options) - {"timm_model", "dynamic_img_size", "global_pool"})
    if unknown:
        raise SatbenchError(f"model {card.name}: unknown build options for the timm family: {', '.join(unknown)}")
    name = _timm_name(card.name)
    model = _create(name)
    model.__class__ = _backbone_class(type(model))
    model.timm_name = name
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
             "global_pool": OptionSpec(str)},
    layer_decay_embedding_names=("cls_token", "pos_embed", "reg_token", "patch_embed"),
    no_weight_decay_names=("cls_token", "pos_embed", "reg_token"),
    name_prefix=PREFIX,
    dynamic_card=lambda name: card_for(name),
))

__all__ = ["card_for", "build_timm", "timm_state_dict_from_checkpoint", "TIMM_CLASSIFIER_KEYS", "TimmViTBackbone"]
