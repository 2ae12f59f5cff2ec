"""A bounded sample of the segmentation backbone's features, taken before the decoder trains: what the features
guard (:mod:`satbench.eval.feature_guard`, handed in by the segmentation task) checks for NaN and collapse.

The sample: the first :data:`SAMPLE_TILES` tiles of the val split, through the val pipeline (its resize), the
model's own data preprocessor conventions (channel order, mean / std), one centred window of the inference size
(``test_cfg.crop_size`` in slide mode, else the training crop; cut to whole patches), then the backbone in eval mode
without gradients. The rows are the patch tokens of the deepest tapped block (the map the decoder's deepest level
reads), one row per patch of every sampled tile: a segmentation backbone's feature is per patch, and a single val
tile already gives a grid of rows. No random number is drawn, so the training that follows is unchanged.
"""

from __future__ import annotations

import copy
import os
from typing import Any

import numpy as np
import torch

from satbench.io.hashing import canonical_hash

#: How many val tiles are sampled (a bound on the guard's cost: one forward pass per tile).
SAMPLE_TILES = 8


def _window(cfg: Any) -> tuple[int, int]:
    test_cfg = cfg.model.get("test_cfg") or {}
    if test_cfg.get("mode") == "slide" and test_cfg.get("crop_size"):
        h, w = test_cfg["crop_size"]
        return int(h), int(w)
    crop = int(cfg.satbench["crop"])
    return crop, crop


def backbone_patch_sample(seg_model: Any, cfg: Any, n_tiles: int = SAMPLE_TILES) -> tuple[np.ndarray, dict[str, Any]]:
    """``([rows, D] float32 patch features, what was sampled)`` of ``seg_model``'s backbone on the first ``n_tiles``
    val tiles of ``cfg`` (see the module docstring)."""
    from mmseg.registry import DATASETS

    dataset = DATASETS.build(copy.deepcopy(cfg.val_dataloader.dataset))
    n = min(int(n_tiles), len(dataset))
    backbone, pre = seg_model.backbone, seg_model.data_preprocessor
    device = next(backbone.parameters()).device
    mean, std = pre.mean.detach().float().cpu(), pre.std.detach().float().cpu()
    p = int(backbone.patch_size)
    wh, ww = _window(cfg)
    rows: list[np.ndarray] = []
    names: list[str] = []
    was_training = backbone.training
    backbone.eval()
    try:
        for i in range(n):
            item = dataset[i]
            x = item["inputs"].float()
            if getattr(pre, "channel_conversion", False) and x.shape[0] == 3:
                x = x[[2, 1, 0]]
            x = (x - mean) / std
            h, w = x.shape[-2:]
            ch, cw = (min(h, wh) // p) * p, (min(w, ww) // p) * p
            top, left = (h - ch) // 2, (w - cw) // 2
            x = x[:, top:top + ch, left:left + cw]
            with torch.no_grad():
                deepest = backbone(x[None].to(device))[-1][0]  # [D, gh, gw]
            rows.append(deepest.flatten(1).T.float().cpu().numpy())
            path = str(item["data_samples"].metainfo.get("img_path", ""))
            names.append([os.path.basename(path), os.path.getsize(path) if path and os.path.isfile(path) else None])
    finally:
        backbone.train(was_training)
    dim = int(backbone.embed_dim)
    feats = np.concatenate(rows, axis=0) if rows else np.zeros((0, dim), dtype=np.float32)
    info = {"split": "val", "tiles": n, "tiles_sha256": canonical_hash({"tiles": names}), "rows": int(len(feats)), "window": [wh, ww], "patch": p,
            "block": int(backbone.out_indices[-1]), "feature": "patch tokens of the deepest tapped block"}
    return feats.astype(np.float32, copy=False), info


__all__ = ["SAMPLE_TILES", "backbone_patch_sample"]
