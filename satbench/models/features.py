"""The sealed feature extractor: the only way satbench runs a backbone on images.

It always normalises (the model's declared normalisation, or one a protocol names explicitly; there is
no path without it), runs the backbone at the size it is given, and returns a :class:`Features` bundle.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from satbench.models.backbones import BackboneOutput
from satbench.runtime.device import parse_device, warn_if_emulated_bf16
from satbench.errors import SatbenchError
from satbench.data.normalization import Normalization
from satbench.models.weights import LoadedModel


#: What the extractor returns for a batch: the backbone's :class:`~satbench.models.backbones.base.BackboneOutput` (normed CLS,
#: patch tokens, register token, intermediate layers, grid), as float32.
Features = BackboneOutput


def pick_device(device: Optional[str] = None) -> torch.device:
    """``device`` if given, else CUDA when present, else CPU (:func:`satbench.runtime.device.parse_device`)."""
    return parse_device(device)


class FeatureExtractor:
    """Normalise -> backbone -> :class:`Features`.

    Args:
        loaded: the backbone and its provenance (from :func:`satbench.models.weights.load_model`).
        normalization: overrides the card's declared normalisation (e.g. a kNN protocol's per-dataset
            table). Recorded in :meth:`describe`.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``...
        bf16: bf16 autocast (off by default: exactness first). Recorded.
    """

    def __init__(self, loaded: LoadedModel, normalization: Optional[Normalization] = None,
                 device: Optional[str] = None, bf16: bool = False) -> None:
        self.loaded = loaded
        self.card = loaded.card
        self.normalization = normalization or loaded.card.norm
        self.device = pick_device(device)
        self.bf16 = bf16
        warn_if_emulated_bf16(self.device, bf16)
        self.model = loaded.model.to(self.device).eval()
        self._mean = torch.tensor(self.normalization.mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.normalization.std, device=self.device).view(1, 3, 1, 1)

    @property
    def feature_dim(self) -> int:
        return self.card.feature_dim

    def describe(self) -> dict[str, Any]:
        """Everything about this extractor that changes numbers (recorded in results)."""
        return {
            "model": self.card.name,
            "weights": self.loaded.weights.as_dict(),
            "normalization": self.normalization.as_dict(),
            "bf16": self.bf16,
            "device": str(self.device),
            "model_options": dict(getattr(self.model, "options", {})),
        }

    def normalize(self, images: Tensor) -> Tensor:
        """``(x - mean) / std`` on images in [0, 1], ``[B, 3, H, W]`` (uint8 is scaled by 1/255 first)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise SatbenchError(f"expected images of shape [B, 3, H, W], got {tuple(images.shape)}")
        images = images.to(self.device, non_blocking=True)
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        return (images.float() - self._mean) / self._std

    @torch.inference_mode()
    def __call__(self, images: Tensor, *, layers: Sequence[int] = (), norm_layers: bool = True,
                 input_res: Any = None) -> Features:
        """Features of a batch of un-normalised images in [0, 1] (or uint8)."""
        x = self.normalize(images)
        ctx = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        with ctx:
            out: BackboneOutput = self.model.forward_features(x, layers=layers, norm_layers=norm_layers,
                                                              input_res=input_res)
        f = lambda t: None if t is None else t.float()  # noqa: E731
        return BackboneOutput(cls=f(out.cls), patches=f(out.patches), register=f(out.register),
                              layers={k: f(v) for k, v in out.layers.items()}, grid=out.grid)

    def extract_cls(self, batches: Iterable[Tensor], total: Optional[int] = None, desc: str = "extract",
                    progress: bool = True, input_res: Any = None) -> np.ndarray:
        """Normed CLS features ``[n, D]`` float32 for an iterable of image batches, with a progress bar."""
        from tqdm.auto import tqdm

        chunks = []
        with tqdm(total=total, desc=desc, unit="img", disable=not progress, leave=False) as bar:
            for batch in batches:
                feats = self(batch, input_res=input_res).cls
                chunks.append(feats.cpu().numpy().astype(np.float32, copy=False))
                bar.update(len(batch))
        if not chunks:
            return np.zeros((0, self.feature_dim), dtype=np.float32)
        return np.concatenate(chunks, axis=0)


def batched(items: Sequence[Any], batch_size: int) -> Iterator[Sequence[Any]]:
    """Consecutive slices of ``items`` of at most ``batch_size``."""
    for i in range(0, len(items), batch_size):
        yield items[i:i + batch_size]
