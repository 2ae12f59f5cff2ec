"""satbench backbones inside mmsegmentation.

:class:`SatbenchBackbone` (registered in ``mmseg.registry.MODELS``) wraps any satbench model, loaded by
card name (or card file) through :func:`satbench.models.weights.load_model` -- strict, as everywhere -- and returns
the chosen intermediate blocks' patch tokens (CLS and register dropped, as the backbone's
``forward_features`` gives them) reshaped to ``[B, D, H/p, W/p]`` maps. The 4-level pyramid is built by
mmseg's ``Feature2Pyramid`` neck in the config (BEiT/MAE style: 2 deconvs, 1 deconv, identity, max-pool).

:class:`SatbenchLayerDecayOptimizerConstructor` gives layer-wise lr decay for these backbones (mmseg's own
``LayerDecayOptimizerConstructor`` only recognises BEiT/MAE/ConvNeXt classes with ``backbone.layers.N``
names; ours are ``backbone.vit.blocks.N``).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Optional, Sequence

import torch
from torch import Tensor, nn

from satbench.runtime import mmcv_compat

mmcv_compat.install()

from mmengine.dist import get_dist_info  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.optim import DefaultOptimWrapperConstructor  # noqa: E402
from mmseg.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS  # noqa: E402

from satbench.errors import SatbenchError  # noqa: E402
from satbench.models.backbones import FAMILIES  # noqa: E402
from satbench.models.cards import ModelCard  # noqa: E402
from satbench.models.registry import get_card  # noqa: E402
from satbench.models.weights import LoadedModel, load_model  # noqa: E402

#: Blocks tapped by default (0-based), per backbone depth (spec section 5, [INF]).
DEFAULT_OUT_INDICES: dict[int, tuple[int, ...]] = {12: (3, 5, 7, 11), 24: (7, 11, 15, 23)}


def default_out_indices(depth: int) -> tuple[int, ...]:
    """The default tapped blocks for a backbone of ``depth`` blocks (12 -> 3,5,7,11; 24 -> 7,11,15,23)."""
    if depth in DEFAULT_OUT_INDICES:
        return DEFAULT_OUT_INDICES[depth]
    raise SatbenchError(f"no default segmentation layers for a depth-{depth} backbone; "
                        f"pass out_indices (4 block indices) explicitly")


def resolve_card(model: str) -> ModelCard:
    """A card by registered name, or from a card YAML file path (e.g. a private or test-only card)."""
    return get_card(model)


@MODELS.register_module()
class SatbenchBackbone(nn.Module):
    """Any satbench backbone as an mmseg backbone returning 4 feature maps.

    Args:
        model: registered model name (``satbench models``) or a card YAML path.
        weights: None (the card's official weights: cache, then hub), ``"random"`` (seeded init) or a file.
        seed: seed of the random init (``weights="random"``).
        out_indices: 4 block indices (0-based) to tap; default 3,5,7,11 (depth 12) or 7,11,15,23 (depth 24).
        norm_layers: pass tapped tokens through the backbone's final LayerNorm (the official SatDINO
            ``forward_intermediate_layers`` does) -- recorded.
        frozen: freeze the backbone (no gradients, kept in eval mode) -- recorded.
        kind: which declared weights of the card (``pretrain`` or ``finetune``).
        trust_checkpoint: allow checkpoints that need types beyond satbench's safe list.
        build_options: backbone build options (e.g. ``{"pos_interp": "size", "drop_path_rate": 0.1}``).
    """

    def __init__(self, model: str, weights: Optional[str] = None, seed: int = 0,
                 out_indices: Optional[Sequence[int]] = None, norm_layers: bool = True, frozen: bool = False,
                 kind: str = "pretrain", trust_checkpoint: bool = False,
                 build_options: Optional[dict[str, Any]] = None, init_cfg: Any = None) -> None:
        super().__init__()
        card = resolve_card(model)
        loaded = load_model(card, weights, kind=kind, seed=seed, trust_checkpoint=trust_checkpoint,
                            **dict(build_options or {}))
        self._setup(loaded, out_indices, norm_layers, frozen)

    @classmethod
    def from_loaded(cls, loaded: LoadedModel, out_indices: Optional[Sequence[int]] = None,
                    norm_layers: bool = True, frozen: bool = False) -> "SatbenchBackbone":
        """Wrap an already-loaded model (Python API; configs use the constructor)."""
        self = cls.__new__(cls)
        nn.Module.__init__(self)
        self._setup(loaded, out_indices, norm_layers, frozen)
        return self

    def _setup(self, loaded: LoadedModel, out_indices: Optional[Sequence[int]], norm_layers: bool,
               frozen: bool) -> None:
        self.vit = loaded.model
        self.card = loaded.card
        self.weights_info = loaded.weights
        depth = int(getattr(self.vit, "depth"))
        idx = tuple(int(i) for i in (out_indices if out_indices is not None else default_out_indices(depth)))
        if len(idx) != 4:
            raise SatbenchError(f"out_indices must name 4 blocks for the 4-level pyramid, got {list(idx)}")
        bad = [i for i in idx if not 0 <= i < depth]
        if bad:
            raise SatbenchError(f"out_indices {list(idx)}: {bad} out of range for the depth-{depth} {self.card.name}")
        if list(idx) != sorted(idx):
            raise SatbenchError(f"out_indices must be increasing (shallow to deep), got {list(idx)}")
        self.out_indices = idx
        self.norm_layers = bool(norm_layers)
        self.frozen = bool(frozen)
        self.embed_dim = int(self.vit.embed_dim)
        self.patch_size = int(self.vit.patch_size)
        if self.frozen:
            for p in self.vit.parameters():
                p.requires_grad_(False)
            self.vit.eval()
        self.vit.train(self.training and not self.frozen)

    def train(self, mode: bool = True) -> "SatbenchBackbone":
        super().train(mode)
        if self.frozen:
            self.vit.eval()
        return self

    @property
    def options(self) -> dict[str, Any]:
        """Everything about this backbone that changes numbers (recorded in results)."""
        return {"model": self.card.name, "weights": self.weights_info.as_dict(),
                "out_indices": list(self.out_indices), "norm_layers": self.norm_layers, "frozen": self.frozen,
                "model_options": dict(getattr(self.vit, "options", {}))}

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Normalised images ``[B, 3, H, W]`` -> 4 maps ``[B, D, H/p, W/p]`` (shallow to deep)."""
        with torch.no_grad() if self.frozen else nullcontext():
            out = self.vit.forward_features(x, layers=self.out_indices, norm_layers=self.norm_layers)
        gh, gw = out.grid
        maps = []
        for i in self.out_indices:
            t = out.layers[i]
            b, n, d = t.shape
            if n != gh * gw:
                raise SatbenchError(f"layer {i}: {n} patch tokens do not fill the {gh}x{gw} grid")
            maps.append(t.transpose(1, 2).reshape(b, d, gh, gw).contiguous())
        return tuple(maps)


def layer_id_for_param(name: str, depth: int,
                       embedding_names: Sequence[str] = ("cls_token", "pos_embed", "patch_embed")) -> int:
    """Layer id for layer-wise lr decay: embeddings/tokens 0, block i -> i+1, everything else depth+1.

    ``name`` is a full segmentor parameter name (``backbone.vit.blocks.3.attn.qkv.weight``...);
    ``embedding_names`` are the backbone family's token / embedding parameters (its
    ``Family.layer_decay_embedding_names``).
    """
    if name.startswith("backbone.vit."):
        rest = name[len("backbone.vit."):]
        if rest.startswith(tuple(embedding_names)):
            return 0
        if rest.startswith("blocks."):
            return int(rest.split(".")[1]) + 1
    return depth + 1




@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class SatbenchLayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """BEiT-style layer-wise lr decay for :class:`SatbenchBackbone` segmentors.

    ``paramwise_cfg = dict(num_layers=<backbone depth>, decay_rate=<r>)``. With ``L = num_layers + 2`` ids,
    a parameter with layer id ``k`` gets ``lr = base_lr * r ** (L - k - 1)`` (mmseg's formula): patch
    embedding and tokens ``k=0``, block ``i`` ``k=i+1``, the final norm, neck and heads ``k=L-1`` (scale 1).
    Biases, 1-D parameters and the tokens / pos_embed get no weight decay.
    """

    def add_params(self, params: list, module: nn.Module, **kwargs: Any) -> None:
        depth = int(self.paramwise_cfg.get("num_layers"))
        rate = float(self.paramwise_cfg.get("decay_rate"))
        num_ids = depth + 2
        card = getattr(getattr(module, "backbone", None), "card", None)
        family = FAMILIES.get(card.family) if card is not None else None
        embedding_names = family.layer_decay_embedding_names if family else ("cls_token", "pos_embed", "patch_embed")
        no_decay_names = family.no_weight_decay_names if family else ("cls_token", "pos_embed")
        groups: dict[str, dict[str, Any]] = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            short = name.rsplit(".", 1)[-1]
            if param.ndim == 1 or name.endswith(".bias") or short in no_decay_names:
                gname, wd = "no_decay", 0.0
            else:
                gname, wd = "decay", self.base_wd
            lid = layer_id_for_param(name, depth, embedding_names)
            key = f"layer_{lid}_{gname}"
            if key not in groups:
                scale = rate ** (num_ids - lid - 1)
                groups[key] = {"weight_decay": wd, "params": [], "param_names": [], "lr_scale": scale,
                               "group_name": key, "lr": scale * self.base_lr}
            groups[key]["params"].append(param)
            groups[key]["param_names"].append(name)
        rank, _ = get_dist_info()
        if rank == 0:
            summary = {k: (len(v["params"]), round(v["lr_scale"], 6), v["weight_decay"]) for k, v in sorted(groups.items())}
            print_log(f"layer-wise lr decay {rate} over {depth} blocks: {summary}", logger="current")
        params.extend(groups.values())
