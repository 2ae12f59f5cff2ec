"""DINOHead, the multi-crop wrapper and the GSD read-out (official DINO / SatDINO modules and key names)."""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
from timm.layers import trunc_normal_
from torch import Tensor, nn


class DINOHead(nn.Module):
    """DINO's projection head: MLP -> L2-normalise -> weight-normed linear (no bias).

    Uses the legacy ``nn.utils.weight_norm`` on purpose: its state-dict keys ``last_layer.weight_g`` /
    ``last_layer.weight_v`` are the ones in DINO/SatDINO checkpoints. ``weight_g`` is filled with 1 and
    frozen when ``norm_last_layer`` (the teacher's default); the SatDINO student trains it.
    """

    def __init__(self, in_dim: int, out_dim: int, use_bn: bool = False, norm_last_layer: bool = True,
                 nlayers: int = 3, hidden_dim: int = 2048, bottleneck_dim: int = 256) -> None:
        super().__init__()
        nlayers = max(nlayers, 1)
        if nlayers == 1:
            self.mlp: nn.Module = nn.Linear(in_dim, bottleneck_dim)
        else:
            layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim)]
            if use_bn:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.GELU())
            for _ in range(nlayers - 2):
                layers.append(nn.Linear(hidden_dim, hidden_dim))
                if use_bn:
                    layers.append(nn.BatchNorm1d(hidden_dim))
                layers.append(nn.GELU())
            layers.append(nn.Linear(hidden_dim, bottleneck_dim))
            self.mlp = nn.Sequential(*layers)
        self.apply(self._init_weights)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.last_layer = nn.utils.weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.last_layer.weight_g.data.fill_(1)
        if norm_last_layer:
            self.last_layer.weight_g.requires_grad = False

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        x = self.mlp(x)
        x = nn.functional.normalize(x, dim=-1, p=2)
        return self.last_layer(x)


class MultiCropWrapper(nn.Module):
    """Backbone + head over a list of crops, batched by resolution (``MultiCropTemporalWrapper2``).

    Consecutive crops of equal size go through the backbone in one pass; CLS outputs are concatenated in
    crop-major order and the head runs once. Returns ``(head_out [n*B, K], registers [n*B, D])``, the
    registers being the normed GSD-register output tokens (``None`` for a plain DINO ViT).
    """

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, crops: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        sizes = torch.tensor([c.shape[-1] for c in crops])
        idx_crops = torch.cumsum(torch.unique_consecutive(sizes, return_counts=True)[1], 0)
        start = 0
        cls_out, reg_out = [], []
        for end in idx_crops.tolist():
            t = self.backbone.prepare_tokens(torch.cat(list(crops[start:end])))
            for blk in self.backbone.blocks:
                t = blk(t)
            t = self.backbone.norm(t)
            cls_out.append(t[:, 0])
            if getattr(self.backbone, "num_registers", 1):
                reg_out.append(t[:, -1])
            start = end
        return self.head(torch.cat(cls_out)), (torch.cat(reg_out) if reg_out else None)


class GSDHead(nn.Module):
    """The GSD read-out ``nn.Linear(D, 1)`` on the register token, output squeezed to ``[n*B]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, 1)

    def forward(self, reg: Tensor) -> Tensor:
        return self.linear(reg).squeeze(-1)
