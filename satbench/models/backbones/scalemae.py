"""Scale-MAE's encoder (ViT-L/16, release "base-800"), with its GSD-aware positional encoding (spec section 6.2).

* Same encoder and key names as SatMAE (:class:`satbench.models.backbones.satmae.MAEEncoderViT`); the stored
  ``pos_embed`` ``[1, 197, 1024]`` is loaded (strict keys) but, as in Scale-MAE's forward, **not used**.
* Positions are computed on the fly for the actual grid ``g`` (square inputs only, as Scale-MAE's
  ``int(num_patches ** 0.5)``): :func:`satbench.models.backbones.sincos.scalemae_2d_sincos` with the grid
  coordinates multiplied by the per-sample ratio ``input_res`` (``None`` means 1.0). CLS gets ``cls_token + 0``.
* Feature (``knn_feats=True``): ``latent[:, 0]``, the final-normed CLS; ``pool="mean"`` as in SatMAE (no fc_norm).
* Weights from ``ckpt['model']``; decoder-side keys of :data:`SCALEMAE_DECODER_KEYS` are dropped by that explicit
  list; any other key fails the strict load.
* :func:`input_res_for` maps an ``input_res`` policy to the ratio for an eval size: ``"1.0"`` or ``"224/size"``
  (Scale-MAE's own ``eval_gsd`` evaluation).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from satbench.errors import InputSizeError, ProtocolError, SatbenchError
from satbench.models.backbones.base import Family, register_family
from satbench.models.backbones.satmae import (
    MAE_EMBEDDING_NAMES, MAE_OPTIONS, SATMAE_DECODER_KEYS, MAEEncoderViT, check_mae_card, mae_dims,
    mae_state_dict_from_checkpoint
)
from satbench.models.backbones.sincos import scalemae_2d_sincos

#: Decoder-side names of Scale-MAE's ``models_mae.MaskedAutoencoderViT`` (its ``__init__``): the MAE decoder
#: (``mask_token``, ``decoder_embed``, ``decoder_pos_embed``, ``decoder_blocks``, ``decoder_norm``; ``decoder_pred``
#: kept from the MAE list though Scale-MAE has none), ``mask_token_decoder``, the optional ``pos_emb_projection``,
#: the FPN (``fpn``) and the Laplacian FCN heads (``fcn``, or ``fcn_high``/``fcn_low`` when independent).
SCALEMAE_DECODER_KEYS: tuple[str, ...] = SATMAE_DECODER_KEYS + (
    "mask_token_decoder", "pos_emb_projection.", "fpn.", "fcn.", "fcn_high.", "fcn_low.",
)

INPUT_RES_POLICIES = ("1.0", "224/size")


def input_res_for(policy: str, size: int) -> float:
    """Scale-MAE ``input_res`` for an eval input of ``size`` px: policy ``"1.0"`` or ``"224/size"``."""
    policy = str(policy)
    if size <= 0:
        raise ProtocolError(f"input size must be positive, got {size}")
    if policy == "1.0":
        return 1.0
    if policy == "224/size":
        return 224.0 / size
    raise ProtocolError(f"input_res policy must be one of {', '.join(INPUT_RES_POLICIES)}, got {policy!r}")


def input_res_tensor(input_res: Any, batch: int, device: torch.device) -> Tensor:
    """``input_res`` (None, a number or a tensor of B ratios) as a float32 ``[B]`` tensor; bad values raise."""
    if input_res is None:
        res = torch.ones(batch)
    elif isinstance(input_res, (int, float)) and not isinstance(input_res, bool):
        res = torch.full((batch,), float(input_res))
    elif isinstance(input_res, Tensor):
        res = input_res.detach().to(torch.float32).cpu().reshape(-1)
        if res.numel() == 1:
            res = res.expand(batch).clone()
        elif res.numel() != batch:
            raise SatbenchError(f"input_res has {res.numel()} values for a batch of {batch} images")
    else:
        raise SatbenchError(f"input_res must be None, a number or a tensor of per-image ratios, got {type(input_res).__name__}")
    if not bool(torch.isfinite(res).all()) or not bool((res > 0).all()):
        raise SatbenchError(f"input_res must be positive and finite, got {res.tolist()[:4]}")
    return res.to(device)


class ScaleMAEViT(MAEEncoderViT):
    """Scale-MAE's encoder: GSD-scaled 2-D sin-cos positions at the actual grid, stored pos_embed unused."""

    family = "scalemae"

    def check_input_size(self, height: int, width: int) -> None:
        """As MAE's, plus Scale-MAE's square patch grid (its positions use ``int(num_patches ** 0.5)``)."""
        super().check_input_size(height, width)
        if height // self.patch_size != width // self.patch_size:
            raise InputSizeError(f"Scale-MAE needs a square patch grid (its positions use int(sqrt(num_patches))), got "
                                 f"{height} x {width} px = {height // self.patch_size} x {width // self.patch_size} patches")

    def add_positions(self, tokens: Tensor, gh: int, gw: int, input_res: Any) -> Tensor:
        if gh != gw:
            raise InputSizeError(f"Scale-MAE needs a square patch grid (its positions use int(sqrt(num_patches))), "
                                 f"got {gh}x{gw} patches")
        res = input_res_tensor(input_res, tokens.shape[0], tokens.device)
        pos = scalemae_2d_sincos(self.embed_dim, gh, res, cls_token=True)  # [B, 1 + g*g, D], CLS row zero
        tokens = tokens + pos[:, 1:]
        cls = self.cls_token + pos[:, :1]
        return torch.cat((cls, tokens), dim=1)


def build_scalemae(card: Any, *, pool: str = "cls", attn_impl: str = "matmul", depth: int | None = None) -> ScaleMAEViT:
    """Build Scale-MAE's encoder from a card (``depth`` overrides it: reduced-depth test variants)."""
    return ScaleMAEViT(patch_size=card.patch_size, img_size=card.img_size, pool=pool, attn_impl=attn_impl,
                       **mae_dims(card, depth))


def scalemae_state_dict_from_checkpoint(obj: Any, card: Any) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Scale-MAE ``scalemae-vitlarge-800.pth`` -> encoder state dict (:data:`SCALEMAE_DECODER_KEYS` dropped)."""
    return mae_state_dict_from_checkpoint(obj, card, SCALEMAE_DECODER_KEYS)


register_family(Family(
    "scalemae", build_scalemae, scalemae_state_dict_from_checkpoint,
    options=dict(MAE_OPTIONS),
    input_res_policies=("none",) + INPUT_RES_POLICIES,
    input_res_fn=input_res_for,
    layer_decay_embedding_names=MAE_EMBEDDING_NAMES, no_weight_decay_names=("cls_token", "pos_embed", "mask_token"),
    check_card=check_mae_card,
    about="Scale-MAE ViT-L/16 encoder, GSD-scaled sin-cos positions (input_res)",
    requires=("torch",),
))

__all__ = ["ScaleMAEViT", "build_scalemae", "input_res_for", "input_res_tensor", "SCALEMAE_DECODER_KEYS",
           "scalemae_state_dict_from_checkpoint"]
