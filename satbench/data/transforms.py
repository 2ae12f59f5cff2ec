"""Protocol transforms (torchvision). They stop at ``ToTensor`` (images in [0, 1]): normalisation is applied by the
:class:`satbench.models.features.FeatureExtractor`, so no code path can skip it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from satbench.errors import ProtocolError


def knn_input_size(native: int, scale: float, multiple: int = 16) -> tuple[int, int]:
    """SatDINO's per-scale input size (spec 3.3): ``target = np.round(scale * native)``; if not a multiple of
    ``multiple`` floor it to one; at least ``multiple``. Returns ``(target_before_rounding, final)``.

    The official code always uses ``multiple=16`` (``knn_main``'s default patch size), even for ViT-S/8.
    """
    if not scale > 0:
        raise ProtocolError(f"scale must be positive, got {scale}")
    target = int(np.round(scale * native))
    final = target
    if final % multiple != 0:
        final = max(1, final // multiple) * multiple
    final = max(final, multiple)
    return target, final


def knn_resize_size(size: int, ratio: float = 256 / 224) -> int:
    """``round(size * 256 / 224)``: the short-side resize before the centre crop."""
    return int(round(size * ratio))


def knn_transform(size: int, ratio: float = 256 / 224) -> T.Compose:
    """``Resize(round(size*8/7), bicubic)`` (PIL, antialiased) + ``CenterCrop(size)`` + ``ToTensor`` (spec 3.3)."""
    return T.Compose([
        T.Resize(knn_resize_size(size, ratio), interpolation=InterpolationMode.BICUBIC),
        T.CenterCrop(size),
        T.ToTensor(),
    ])


def knn_transform_spec(size: int, ratio: float = 256 / 224) -> dict[str, Any]:
    """A JSON description of :func:`knn_transform` (for cache keys and records)."""
    return {"resize": knn_resize_size(size, ratio), "interpolation": "bicubic", "center_crop": size, "to_tensor": True}


def eval_transform(resize: int = 256, crop: int = 224) -> T.Compose:
    """Linear-probe validation transform: ``Resize(256, bicubic)`` + ``CenterCrop(224)`` + ``ToTensor``."""
    return T.Compose([T.Resize(resize, interpolation=InterpolationMode.BICUBIC), T.CenterCrop(crop), T.ToTensor()])


def train_transform(crop: int = 224) -> T.Compose:
    """Linear-probe training transform: torchvision ``RandomResizedCrop(224)`` defaults + horizontal flip."""
    return T.Compose([T.RandomResizedCrop(crop), T.RandomHorizontalFlip(), T.ToTensor()])
