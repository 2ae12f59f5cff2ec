"""SatMAE's encoder (fMoW-RGB, non-temporal, ViT-L/16), loaded from the MAE-format release (spec section 6.1).

* timm ``Block``s (pre-norm, fused qkv with bias, exact GELU, LayerNorm eps 1e-6); keys ``cls_token``,
  ``pos_embed`` ``[1, 197, 1024]`` (a fixed 2-D sin-cos Parameter, requires_grad False), ``patch_embed.proj.*``,
  ``blocks.{i}.*``, ``norm.*``. The attention uses timm's plain-matmul path by default (``attn_impl="matmul"``;
  head_dim 64 makes timm's scale-before-matmul bit-identical to the MAE-era scale-after-matmul).
* Positional embedding at the stored grid (14 x 14 at 224 px): the stored table, as the official forward.
  At any other grid, ``pos_embed="regenerate"`` (default) recomputes MAE's 2-D sin-cos for the actual grid
  (:func:`satbench.models.backbones.sincos.mae_2d_sincos`; exact for a fixed sin-cos table), and
  ``pos_embed="interpolate"`` bicubic-resizes the stored patch table to the grid (``size=(gh, gw)``,
  ``align_corners=False``, timm ``resample_abs_pos_embed`` style). Which one SatDINO used is [UNK]; recorded.
* Feature: ``pool="cls"`` (default; MAE ``global_pool=False``) is the final-normed CLS token. The released
  pretrain checkpoints carry no ``fc_norm``, so ``pool="mean"`` is the mean of the final-normed patch tokens
  (not MAE's ``global_pool=True``, which would need a fine-tuned ``fc_norm``). ``BackboneOutput.cls`` holds
  the pooled feature.
* Weights come from ``ckpt['model']``: encoder keys strictly; the decoder-side keys named in
  :data:`SATMAE_DECODER_KEYS` are dropped by that explicit list; any other key fails the strict load.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed, trunc_normal_
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from satbench.errors import SatbenchError, WeightsError
from satbench.models.backbones.base import (
    ATTN_IMPLS, MAX_GRID_SIDE, BackboneOutput, Family, OptionSpec, check_choice, check_input_grid, register_family
)
from satbench.models.backbones.satdino import ARCHS, _check_layers, strip_prefixes
from satbench.models.backbones.sincos import mae_2d_sincos

POOLS = ("cls", "mean")
POS_EMBED_MODES = ("regenerate", "interpolate")

#: MAE decoder-side keys in SatMAE's ``fmow_pretrain.pth`` (exact names, and ``prefix.`` families).
SATMAE_DECODER_KEYS: tuple[str, ...] = (
    "mask_token", "decoder_pos_embed", "decoder_embed.", "decoder_blocks.", "decoder_norm.", "decoder_pred.",
)


class MAEEncoderViT(nn.Module):
    """The encoder half of an MAE ``MaskedAutoencoderViT`` (no masking), with MAE's key names.

    Subclasses define :meth:`pos_embed_for` (the positional table for a grid) and how CLS gets its position.
    """

    family = "mae"

    def __init__(self, patch_size: int = 16, embed_dim: int = 1024, depth: int = 24, num_heads: int = 16,
                 mlp_ratio: float = 4.0, img_size: int = 224, in_chans: int = 3, pool: str = "cls",
                 attn_impl: str = "matmul") -> None:
        super().__init__()
        check_choice("pool", pool, POOLS)
        check_choice("attn_impl", attn_impl, ATTN_IMPLS)
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.num_heads = num_heads
        self.pool = pool
        self.attn_impl = attn_impl
        self.img_size = img_size
        self.base_grid = img_size // patch_size
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        # Modules are created on the meta device and initialised once below (MAE's init), which halves the
        # build time of a random-init ViT-L (PyTorch's default init would otherwise run first, for nothing).
        with torch.device("meta"):
            self.patch_embed = PatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                                          embed_dim=embed_dim, strict_img_size=False, output_fmt="NLC")
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
            self.pos_embed = nn.Parameter(torch.zeros(1, self.base_grid ** 2 + 1, embed_dim), requires_grad=False)
            self.blocks = nn.ModuleList(
                Block(dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=True, norm_layer=norm_layer,
                      act_layer=nn.GELU)
                for _ in range(depth)
            )
            self.norm = norm_layer(embed_dim)
        for blk in self.blocks:
            blk.attn.fused_attn = attn_impl == "sdpa"
        if torch.empty(0).device.type != "meta":  # under ``with torch.device("meta")`` stay shape-only
            self.to_empty(device=torch.empty(0).device)
            self._init_all()

    @torch.no_grad()
    def _init_all(self) -> None:
        """MAE ``initialize_weights``: fixed sin-cos pos_embed, xavier patch-embed/Linear, N(0, .02) CLS, LN 1/0."""
        table = mae_2d_sincos(self.embed_dim, self.base_grid, cls_token=True)
        self.pos_embed.copy_(torch.from_numpy(table).float().unsqueeze(0))
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.proj.bias)
        trunc_normal_(self.cls_token, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    @property
    def options(self) -> dict[str, Any]:
        return {"pool": self.pool, "attn_impl": self.attn_impl}

    # -- input sizes --------------------------------------------------------------------------------
    def max_input_size(self) -> int:
        """Largest input side in px: satbench's :data:`~.base.MAX_GRID_SIDE` patches (MAE has no official limit)."""
        return MAX_GRID_SIDE * self.patch_size

    def check_input_size(self, height: int, width: int) -> None:
        """Raise :class:`~satbench.errors.InputSizeError` for an input this encoder cannot take (before any decode)."""
        check_input_grid(f"{type(self).__name__} (patch {self.patch_size})", self.patch_size, height, width,
                         MAX_GRID_SIDE)

    # -- to be specialised ----------------------------------------------------------------------
    def add_positions(self, tokens: Tensor, gh: int, gw: int, input_res: Any) -> Tensor:
        """Return ``[CLS + its position, patches + theirs]`` for a ``gh x gw`` patch grid."""
        raise NotImplementedError

    # -- forward --------------------------------------------------------------------------------
    def prepare_tokens(self, x: Tensor, input_res: Any = None) -> Tensor:
        gh, gw = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        if gh < 1 or gw < 1:
            from satbench.errors import InputSizeError

            raise InputSizeError(f"input {x.shape[-2]}x{x.shape[-1]} px is smaller than one {self.patch_size}-px patch")
        return self.add_positions(self.patch_embed(x), gh, gw, input_res)

    def _pool(self, t: Tensor) -> Tensor:
        return t[:, 0] if self.pool == "cls" else t[:, 1:].mean(dim=1)

    def forward_features(self, x: Tensor, *, layers: Sequence[int] = (), norm_layers: bool = True,
                         input_res: Any = None) -> BackboneOutput:
        """CLS (the pooled feature, see module doc), normed patch tokens and chosen intermediate layers."""
        wanted = _check_layers(layers, self.depth)
        gh, gw = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        t = self.prepare_tokens(x, input_res)
        taken: dict[int, Tensor] = {}
        for i, blk in enumerate(self.blocks):
            t = blk(t)
            if i in wanted:
                taken[i] = (self.norm(t) if norm_layers else t)[:, 1:]
        t = self.norm(t)
        return BackboneOutput(cls=self._pool(t), patches=t[:, 1:], register=None, layers=taken, grid=(gh, gw))

    def forward(self, x: Tensor, input_res: Any = None) -> Tensor:
        """The feature ``[B, D]``: the final-normed CLS token (or mean patch token with ``pool="mean"``)."""
        t = self.prepare_tokens(x, input_res)
        for blk in self.blocks:
            t = blk(t)
        return self._pool(self.norm(t))


class SatMAEViT(MAEEncoderViT):
    """SatMAE's fMoW-RGB encoder (``models_mae.MaskedAutoencoderViT`` encoder, no masking)."""

    family = "satmae"

    def __init__(self, *, pos_embed: str = "regenerate", **kw: Any) -> None:
        if pos_embed not in POS_EMBED_MODES:
            raise SatbenchError(f"pos_embed must be one of {POS_EMBED_MODES}, got {pos_embed!r}")
        super().__init__(**kw)
        self.pos_embed_mode = pos_embed

    @property
    def options(self) -> dict[str, Any]:
        return {"pos_embed": self.pos_embed_mode, **super().options}

    def patch_pos_embed(self, gh: int, gw: int) -> Tensor:
        """``[1, gh*gw, D]`` patch positions: the stored table at the stored grid, else regenerated/interpolated."""
        stored = self.pos_embed[:, 1:]
        if gh == self.base_grid and gw == self.base_grid:
            return stored
        if self.pos_embed_mode == "regenerate":
            table = mae_2d_sincos(self.embed_dim, gh, gw)
            return torch.from_numpy(table).float().unsqueeze(0).to(stored.device)
        grid = stored.reshape(1, self.base_grid, self.base_grid, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        return grid.permute(0, 2, 3, 1).reshape(1, gh * gw, -1)

    def add_positions(self, tokens: Tensor, gh: int, gw: int, input_res: Any) -> Tensor:
        if input_res is not None:
            raise SatbenchError("SatMAE takes no input_res (its positional embedding is not GSD-scaled); "
                                "use a protocol with input_res 'none'")
        tokens = tokens + self.patch_pos_embed(gh, gw)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(tokens.shape[0], -1, -1)
        return torch.cat((cls, tokens), dim=1)


def mae_dims(card: Any, depth: int | None) -> dict[str, int]:
    """embed_dim / depth / num_heads from the card (its arch when those fields are unset); ``depth`` overrides."""
    dims = dict(ARCHS.get(getattr(card, "arch", ""), {}))
    for key in ("embed_dim", "depth", "num_heads"):
        value = getattr(card, key, 0)
        if value:
            dims[key] = int(value)
    if depth is not None:
        dims["depth"] = int(depth)
    missing = [k for k in ("embed_dim", "depth", "num_heads") if not dims.get(k)]
    if missing:
        raise SatbenchError(f"model card {getattr(card, 'name', '?')}: cannot tell {', '.join(missing)} "
                            f"(set them or a known arch: {', '.join(ARCHS)})")
    return dims


def build_satmae(card: Any, *, pos_embed: str = "regenerate", pool: str = "cls", attn_impl: str = "matmul",
                 depth: int | None = None) -> SatMAEViT:
    """Build SatMAE's encoder from a card (``depth`` overrides it: reduced-depth test variants)."""
    return SatMAEViT(patch_size=card.patch_size, img_size=card.img_size, pos_embed=pos_embed, pool=pool,
                     attn_impl=attn_impl, **mae_dims(card, depth))


def mae_state_dict_from_checkpoint(obj: Any, card: Any, decoder_keys: Sequence[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The encoder state dict of an MAE-format checkpoint ``{'model': ..., 'optimizer', 'epoch', 'args', ...}``.

    A bare state dict (e.g. safetensors) is accepted too. Keys in ``decoder_keys`` (exact names, or
    families when they end with ``.``) are dropped and listed in extras; everything else goes to the
    strict loader, so any other stray key is reported there.
    """
    if not isinstance(obj, dict):
        raise WeightsError(f"{card.name}: expected a dict checkpoint, got {type(obj).__name__}")
    if "model" in obj:
        sd = obj["model"]
        if not isinstance(sd, dict):
            raise WeightsError(f"{card.name}: checkpoint key 'model' is a {type(sd).__name__}, expected a state dict")
    elif obj and all(isinstance(v, Tensor) for v in obj.values()):
        sd = obj
    else:
        raise WeightsError(f"{card.name}: no 'model' state dict in the MAE-format checkpoint "
                           f"(top-level keys: {', '.join(sorted(map(str, obj))[:8])})")
    sd = strip_prefixes(sd, ("module.",))
    exact = {k for k in decoder_keys if not k.endswith(".")}
    fams = tuple(k for k in decoder_keys if k.endswith("."))
    dropped = sorted(k for k in sd if k in exact or k.startswith(fams))
    drop = set(dropped)
    kept = {k: v for k, v in sd.items() if k not in drop}
    extras: dict[str, Any] = {"dropped_decoder_keys": len(dropped)}
    if "epoch" in obj:
        extras["epoch"] = obj["epoch"] if isinstance(obj["epoch"], (int, float, str)) else str(obj["epoch"])
    return kept, extras


def satmae_state_dict_from_checkpoint(obj: Any, card: Any) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """SatMAE ``fmow_pretrain.pth`` -> encoder state dict (decoder keys of :data:`SATMAE_DECODER_KEYS` dropped)."""
    return mae_state_dict_from_checkpoint(obj, card, SATMAE_DECODER_KEYS)


def check_mae_card(card: Any, where: str) -> None:
    """An MAE-family card: dimensions known (from the card or its arch) and a CLS-sized feature."""
    dims = mae_dims(card, None)
    if card.embed_dim and card.embed_dim != dims["embed_dim"]:
        raise SatbenchError(f"{where}: embed_dim {card.embed_dim} contradicts the arch")
    if card.feature_dim != dims["embed_dim"]:
        raise SatbenchError(f"{where}: feature_dim {card.feature_dim} must equal embed_dim {dims['embed_dim']}")
    if dims["embed_dim"] % 4 or dims["embed_dim"] % dims["num_heads"]:
        raise SatbenchError(f"{where}: embed_dim {dims['embed_dim']} must be divisible by 4 (2-D sin-cos) and by "
                            f"num_heads {dims['num_heads']}")


#: Build options shared by the MAE-format encoders (SatMAE, Scale-MAE).
MAE_OPTIONS = {
    "pool": OptionSpec(str, POOLS, "cls", "feature: the final-normed CLS token, or the mean of the normed patch tokens"),
    "attn_impl": OptionSpec(str, ATTN_IMPLS, "matmul", "attention: plain matmul (exact) or fused sdpa (faster)"),
}
MAE_EMBEDDING_NAMES = ("cls_token", "pos_embed", "mask_token", "patch_embed")

register_family(Family(
    "satmae", build_satmae, satmae_state_dict_from_checkpoint,
    options={**MAE_OPTIONS, "pos_embed": OptionSpec(str, POS_EMBED_MODES, "regenerate", "positions at a grid other "
                                                    "than 14x14: regenerated sin-cos, or bicubic of the stored table")},
    layer_decay_embedding_names=MAE_EMBEDDING_NAMES, no_weight_decay_names=("cls_token", "pos_embed", "mask_token"),
    check_card=check_mae_card,
    about="SatMAE ViT-L/16 encoder, fixed 2-D sin-cos positions (fmow_pretrain.pth keys)",
    requires=("torch",),
))
