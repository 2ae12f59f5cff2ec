"""Fitting a kNN protocol's input sizes to a backbone's patch: the named, recorded ``size_rule`` option.

SatDINO's kNN protocol floors every scale's size to a multiple of 16 (``size_multiple``). A patch-14 model (DINOv2)
cannot take 64 px (64 / 14 is not whole). ``size_rule`` says what to do when a protocol size is not a whole number of
the model's patches:

* ``floor`` (default): the same transform at ``floor(size / patch) * patch`` px (resize short side to
  ``round(size' * 256/224)``, centre-crop ``size'``), e.g. 64 -> 56 at patch 14;
* ``crop``: the protocol's transform at ``size``, then a centre crop to ``floor(size / patch) * patch``;
* ``strict``: refuse, in one line before any image is decoded.

A size that is already a whole number of patches is never changed (so patch-16 and patch-8 models are unaffected by
the rule). Entries whose size changed carry ``protocol_size`` and ``size_rule`` in the record.
"""

from __future__ import annotations

from typing import Any, Optional

from torch import nn
from torchvision import transforms as T

from satbench.errors import InputSizeError, ProtocolError

SIZE_RULES: tuple[str, ...] = ("floor", "crop", "strict")
DEFAULT_SIZE_RULE = "floor"


def model_patch(model: Optional[nn.Module]) -> Optional[int]:
    """The patch side in px of ``model`` (its ``patch_size``), or None without a model."""
    if model is None:
        return None
    p = getattr(model, "patch_size", None)
    if isinstance(p, (tuple, list)):
        p = p[0]
    return int(p) if isinstance(p, int) and p > 0 else None


def fitted_size(size: int, patch: Optional[int], rule: str, where: str) -> int:
    """The input size ``rule`` makes of protocol size ``size`` for ``patch`` (``size`` itself when it fits)."""
    if rule not in SIZE_RULES:
        raise ProtocolError(f"{where}: size_rule must be one of {', '.join(SIZE_RULES)}, got {rule!r}")
    if patch is None or size % patch == 0 or rule == "strict":
        return size
    out = size // patch * patch
    if out < patch:
        raise InputSizeError(f"{where}: {size} px is smaller than one {patch}-px patch; no size_rule can fit it")
    return out


class CropAfter:
    """``transform`` then a centre crop to ``size`` (the ``crop`` size rule)."""

    def __init__(self, transform: Any, size: int) -> None:
        self.transform = transform
        self.size = size
        self._crop = T.CenterCrop(size)

    def __call__(self, img: Any) -> Any:
        return self._crop(self.transform(img))


__all__ = ["SIZE_RULES", "DEFAULT_SIZE_RULE", "model_patch", "fitted_size", "CropAfter"]
