"""SatDINO's ViT, exactly as the official ``vision_transformer_satdino.py`` computes it (spec section 1).

* Token order ``[CLS, patches..., GSD register]``; learned ``pos_embed`` of ``N + 2`` tokens.
* Blocks are timm ``Block``s (pre-norm, fused qkv with bias, exact GELU, LayerNorm eps 1e-6) with the
  plain-matmul attention path, which is the official arithmetic (head_dim 64 gives a scale of 1/8, a
  power of two, so timm's scale-before-matmul is bit-identical to the official scale-after-matmul).
* Positional-embedding interpolation follows the official formula: bicubic with
  ``scale_factor = (n + 0.1) / sqrt(N)``, ``N = pos_embed tokens - 1``; CLS and register not interpolated.
  Sizes the official code rejects raise :class:`InputSizeError` unless ``pos_interp="size"`` is chosen.
* State-dict keys are the official ones: 151 tensors at depth 12.
* ``gsd_register=False`` gives the plain DINO ViT of ``main_dino.py`` (the paper's ablation; DINO's
  ``vision_transformer.py``): tokens ``[CLS, patches]``, ``pos_embed`` of ``N + 1`` tokens, the same
  interpolation formula (there ``N`` = number of patches, e.g. 196), 150 tensors at depth 12.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed, trunc_normal_
from timm.models.vision_transformer import Block
from torch import Tensor, nn

from satbench.errors import InputSizeError, SatbenchError, WeightsError
from satbench.models.backbones.base import (
    ATTN_IMPLS, MAX_GRID_SIDE, BackboneOutput, Family, OptionSpec, check_choice, check_input_grid, register_family
)

ARCHS: dict[str, dict[str, int]] = {
    "vit_tiny": dict(embed_dim=192, depth=12, num_heads=3),
    "vit_small": dict(embed_dim=384, depth=12, num_heads=6),
    "vit_base": dict(embed_dim=768, depth=12, num_heads=12),
    "vit_large": dict(embed_dim=1024, depth=24, num_heads=16),
}

POS_INTERP_MODES = ("official", "size")


class SatDINOViT(nn.Module):
    """The SatDINO Vision Transformer (``VisionTransformerSatDINO``) with official key names."""

    def __init__(
        self,
        patch_size: int = 16,
        embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 6,
        mlp_ratio: float = 4.0,
        img_size: int = 224,
        in_chans: int = 3,
        drop_path_rate: float = 0.0,
        pos_interp: str = "official",
        attn_impl: str = "matmul",
        gsd_register: bool = True,
    ) -> None:
        super().__init__()
        check_choice("pos_interp", pos_interp, POS_INTERP_MODES)
        check_choice("attn_impl", attn_impl, ATTN_IMPLS)
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.num_heads = num_heads
        self.pos_interp = pos_interp
        self.attn_impl = attn_impl
        self.num_registers = 1 if gsd_register else 0
        # No input-size check, as in the official patch embedding: any H, W is accepted (floored).
        self.patch_embed = PatchEmbed(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim,
            strict_img_size=False, dynamic_img_pad=False, output_fmt="NLC",
        )
        num_patches = (img_size // patch_size) ** 2
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        if gsd_register:
            self.gsd_register = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1 + self.num_registers, embed_dim))
        dpr = [x.item() for x in torch.linspace(0, drop_path_rate, depth, device="cpu")]  # as the official code; cpu so meta builds work
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.blocks = nn.ModuleList(
            Block(dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=True,
                  drop_path=dpr[i], norm_layer=norm_layer, act_layer=nn.GELU)
            for i in range(depth)
        )
        for blk in self.blocks:
            blk.attn.fused_attn = attn_impl == "sdpa"
        self.norm = norm_layer(embed_dim)
        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        if gsd_register:
            trunc_normal_(self.gsd_register, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    @property
    def options(self) -> dict[str, Any]:
        """Numerics-changing choices of this instance (recorded in results)."""
        opts: dict[str, Any] = {"pos_interp": self.pos_interp, "attn_impl": self.attn_impl}
        if not self.num_registers:
            opts["gsd_register"] = False
        return opts

    # -- positional embedding -------------------------------------------------------------------
    def max_official_patches(self) -> int:
        """Largest patches-per-side the official interpolation accepts for this pos_embed."""
        n_tok = self.pos_embed.shape[1] - 1
        side = int(math.sqrt(n_tok))
        n = 1
        while int(side * ((n + 1 + 0.1) / math.sqrt(n_tok))) == n + 1:
            n += 1
        return n

    def _official_grid_ok(self, g: int) -> bool:
        """Whether the official interpolation yields ``g`` patches along one axis (its output is
        ``floor(side * (g + 0.1) / sqrt(N))``; the stored table is used as is at ``g == side``)."""
        n_tok = self.pos_embed.shape[1] - 1
        side = int(math.sqrt(n_tok))
        return g == side or int(side * ((g + 0.1) / math.sqrt(n_tok))) == g

    def max_input_size(self) -> int:
        """Largest input side in px (a multiple of the patch size; the patch embedding floors larger sizes to it):
        the official interpolation's limit with ``pos_interp="official"`` (624 px for ViT-S/16, 1,248 px for ViT-S/8),
        at most satbench's :data:`~.base.MAX_GRID_SIDE` patches either way."""
        return self._max_grid() * self.patch_size

    def _max_grid(self) -> int:
        if self.pos_interp != "official":
            return MAX_GRID_SIDE
        g = 1
        while g < MAX_GRID_SIDE and self._official_grid_ok(g + 1):  # the check is monotone in g
            g += 1
        return g

    def check_input_size(self, height: int, width: int) -> None:
        """Raise :class:`InputSizeError` for an input this instance cannot take (checked before any decode)."""
        grid = self._max_grid()
        gmax = max(height, width) // self.patch_size
        if self.pos_interp == "official" and gmax > grid and min(height, width) >= self.patch_size and gmax <= MAX_GRID_SIDE:
            raise InputSizeError(
                f"input {height} x {width} px is beyond what SatDINO's official pos-embed interpolation supports "
                f"(at most {grid} patches of {self.patch_size} px per side, {grid * self.patch_size} px); choose "
                f"pos_interp='size' (--pos-interp size) for plain size-based bicubic interpolation (recorded)")
        check_input_grid(f"SatDINO ViT/{self.patch_size}", self.patch_size, height, width, grid)

    def interpolate_pos_encoding(self, height: int, width: int) -> Tensor:
        """Positional embedding for an input of ``height x width`` pixels (official formula)."""
        pos_embed = self.pos_embed
        big_n = pos_embed.shape[1] - 1  # SatDINO: num_patches + 1 (the register slot), e.g. 197; DINO: 196
        gh, gw = height // self.patch_size, width // self.patch_size
        side = int(math.sqrt(big_n))
        if gh * gw == side * side and gh == gw:
            return pos_embed
        class_pos = pos_embed[:, :1]
        patch_pos = pos_embed[:, 1:pos_embed.shape[1] - self.num_registers]
        reg_pos = pos_embed[:, pos_embed.shape[1] - self.num_registers:]
        dim = pos_embed.shape[-1]
        grid = patch_pos.reshape(1, side, side, dim).permute(0, 3, 1, 2)
        if self.pos_interp == "official":
            h0, w0 = gh + 0.1, gw + 0.1
            grid = F.interpolate(grid, scale_factor=(h0 / math.sqrt(big_n), w0 / math.sqrt(big_n)),
                                 mode="bicubic", align_corners=False)
            if grid.shape[-2] != gh or grid.shape[-1] != gw:
                raise InputSizeError(
                    f"input {height}x{width} px ({gh}x{gw} patches of {self.patch_size}) is beyond what "
                    f"SatDINO's official pos-embed interpolation supports (at most "
                    f"{self.max_official_patches()} patches per side, "
                    f"{self.max_official_patches() * self.patch_size} px); choose pos_interp='size' "
                    f"(--pos-interp size) for plain size-based bicubic interpolation (recorded)"
                )
        else:
            grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        patch_pos = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, dim)
        return torch.cat((class_pos, patch_pos, reg_pos), dim=1)

    # -- forward --------------------------------------------------------------------------------
    def prepare_tokens(self, x: Tensor) -> Tensor:
        """Patch-embed, concatenate [CLS, patches, register] (DINO: [CLS, patches]) and add the pos_embed."""
        b, _, h, w = x.shape
        tokens = self.patch_embed(x)
        cls = self.cls_token.expand(b, -1, -1)
        parts = [cls, tokens] + ([self.gsd_register.expand(b, -1, -1)] if self.num_registers else [])
        tokens = torch.cat(parts, dim=1)
        return tokens + self.interpolate_pos_encoding(h, w)

    def forward_features(
        self, x: Tensor, *, layers: Sequence[int] = (), norm_layers: bool = True, input_res: Any = None
    ) -> BackboneOutput:
        """Run the ViT and return CLS, patch tokens, register and chosen intermediate layers."""
        if input_res is not None:
            raise SatbenchError("SatDINO takes no input_res argument (its pos_embed is not GSD-scaled)")
        wanted = _check_layers(layers, self.depth)
        gh, gw = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
        t = self.prepare_tokens(x)
        taken: dict[int, Tensor] = {}
        for i, blk in enumerate(self.blocks):
            t = blk(t)
            if i in wanted:
                inter = self.norm(t) if norm_layers else t
                taken[i] = inter[:, 1:inter.shape[1] - self.num_registers]
        t = self.norm(t)
        end = t.shape[1] - self.num_registers
        return BackboneOutput(cls=t[:, 0], patches=t[:, 1:end], register=t[:, -1] if self.num_registers else None,
                              layers=taken, grid=(gh, gw))

    def forward(self, x: Tensor) -> Tensor:
        """The official forward: the layer-normed CLS token ``[B, D]``."""
        t = self.prepare_tokens(x)
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t)[:, 0]


def _check_layers(layers: Sequence[int], depth: int) -> set[int]:
    out = set()
    for i in layers:
        j = i + depth if i < 0 else i
        if not 0 <= j < depth:
            raise SatbenchError(f"layer index {i} is out of range for a depth-{depth} model")
        out.add(j)
    return out


def build_satdino(card: Any = None, *, arch: str | None = None, patch_size: int | None = None,
                  drop_path_rate: float = 0.0, pos_interp: str = "official", attn_impl: str = "matmul",
                  img_size: int | None = None, depth: int | None = None, gsd_register: bool = True) -> SatDINOViT:
    """Build a SatDINO ViT from a card (its ``embed_dim``, ``depth``, ``num_heads``, ``patch_size``) or from ``arch``
    and ``patch_size``. ``depth`` overrides the depth (reduced-depth models built directly, e.g. by the pretraining
    loop); ``gsd_register=False`` builds the plain DINO ViT (card option ``gsd_register: false``)."""
    if card is not None:
        dims = {"embed_dim": card.embed_dim, "depth": card.depth, "num_heads": card.num_heads or
                ARCHS.get(card.arch, {}).get("num_heads", 0)}
        patch_size = patch_size or card.patch_size
        img_size = img_size or card.img_size
    else:
        if arch not in ARCHS:
            raise SatbenchError(f"unknown SatDINO arch {arch!r}; expected one of {sorted(ARCHS)}")
        dims = dict(ARCHS[arch])
    if depth is not None:
        dims["depth"] = int(depth)
    return SatDINOViT(patch_size=patch_size or 16, img_size=img_size or 224, drop_path_rate=drop_path_rate,
                      pos_interp=pos_interp, attn_impl=attn_impl, gsd_register=gsd_register, **dims)


def check_satdino_card(card: Any, where: str) -> None:
    """A SatDINO card's dimensions agree with its arch (depth may be reduced) and its feature is the CLS token."""
    if card.arch and card.arch not in ARCHS:
        raise SatbenchError(f"{where}: arch must be one of {', '.join(ARCHS)}, got {card.arch!r}")
    ref = ARCHS.get(card.arch, {})
    for key in ("embed_dim", "num_heads"):
        value = getattr(card, key)
        if ref and value and value != ref[key]:
            raise SatbenchError(f"{where}: {key} {value} contradicts arch {card.arch} ({key} {ref[key]})")
    if not (card.num_heads or ref):
        raise SatbenchError(f"{where}: num_heads is required when arch is not one of {', '.join(ARCHS)}")
    if card.embed_dim % (card.num_heads or ref["num_heads"]):
        raise SatbenchError(f"{where}: embed_dim {card.embed_dim} is not divisible by num_heads")
    if card.feature_dim != card.embed_dim:
        raise SatbenchError(f"{where}: feature_dim {card.feature_dim} must equal embed_dim {card.embed_dim} "
                            f"(the feature is the normed CLS token)")
    if card.feature != "cls":
        raise SatbenchError(f"{where}: feature must be cls for the satdino family, got {card.feature!r}")


def vit_tiny(patch_size: int = 16, **kw: Any) -> SatDINOViT:
    return build_satdino(arch="vit_tiny", patch_size=patch_size, **kw)


def vit_small(patch_size: int = 16, **kw: Any) -> SatDINOViT:
    return build_satdino(arch="vit_small", patch_size=patch_size, **kw)


def vit_base(patch_size: int = 16, **kw: Any) -> SatDINOViT:
    return build_satdino(arch="vit_base", patch_size=patch_size, **kw)


def vit_large(patch_size: int = 16, **kw: Any) -> SatDINOViT:
    return build_satdino(arch="vit_large", patch_size=patch_size, **kw)


def strip_prefixes(sd: dict[str, Tensor], prefixes: Sequence[str] = ("module.", "backbone.")) -> dict[str, Tensor]:
    """Strip the ``module.`` and ``backbone.`` prefixes (and nothing else), as the official loader does."""
    out = {}
    for k, v in sd.items():
        changed = True
        while changed:
            changed = False
            for p in prefixes:
                if k.startswith(p):
                    k = k[len(p):]
                    changed = True
        out[k] = v
    return out


def satdino_state_dict_from_checkpoint(obj: Any, card: Any) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Pull the backbone keys (and the optional fMoW ``linear_head``) out of a SatDINO checkpoint.

    Accepts the official ``{'teacher': ..., 'linear_head': ...}`` files (pretrain and ``-finetune``),
    a training checkpoint whose ``teacher`` carries ``backbone.``/``head.`` keys (head keys dropped,
    listed in extras), and a bare backbone state dict (e.g. from safetensors).
    """
    extras: dict[str, Any] = {}
    if not isinstance(obj, dict):
        raise WeightsError(f"expected a dict checkpoint, got {type(obj).__name__}")
    if "teacher" in obj:
        sd = obj["teacher"]
        if "linear_head" in obj and obj["linear_head"] is not None:
            extras["linear_head"] = {k.removeprefix("module."): v for k, v in obj["linear_head"].items()}
    elif "state_dict" in obj and isinstance(obj["state_dict"], dict) and "cls_token" in strip_prefixes(obj["state_dict"]):
        sd = obj["state_dict"]
    elif any(isinstance(v, torch.Tensor) for v in obj.values()):
        sd = obj
    else:
        raise WeightsError(f"no 'teacher' state dict in the checkpoint (top-level keys: {sorted(obj)[:8]})")
    if not isinstance(sd, dict):
        raise WeightsError(f"checkpoint 'teacher' is a {type(sd).__name__}, expected a state dict")
    sd = strip_prefixes(sd)
    head_keys = sorted(k for k in sd if k.startswith("head."))
    if head_keys:
        extras["dropped_head_keys"] = head_keys
        sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
    return sd, extras


register_family(Family(
    "satdino", build_satdino, satdino_state_dict_from_checkpoint,
    options={
        "pos_interp": OptionSpec(str, POS_INTERP_MODES, "official", "pos-embed interpolation: the official "
                                 "scale-factor formula, or plain size-based bicubic (allows >= 640 px at patch 16)"),
        "attn_impl": OptionSpec(str, ATTN_IMPLS, "matmul", "attention: the official plain matmul (exact) or "
                                "torch's fused scaled_dot_product_attention (faster, not bit-identical)"),
        "drop_path_rate": OptionSpec(float, (), 0.0, "stochastic depth (training only)"),
        "gsd_register": OptionSpec(bool, (True, False), True, "false builds the plain DINO ViT (no GSD register)"),
    },
    layer_decay_embedding_names=("cls_token", "pos_embed", "gsd_register", "register", "patch_embed"),
    no_weight_decay_names=("cls_token", "pos_embed", "gsd_register"),
    key_prefixes=("module.", "backbone."),
    check_card=check_satdino_card,
    about="SatDINO: DINO ViT with the GSD register token, official checkpoint keys (Straka & Gruber 2025)",
    requires=("torch",),
))
