"""The one home of the tests' small real inputs: a scene dataset folder copied from the bundled real UC Merced images,
and a depth-2 random ViT-Tiny SatDINO backbone (fast on 2 cores)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any, Sequence

from support.paths import UCM_MINI


def scene_folder(root: Path, name: str, classes: Sequence[str], train: int, val: int) -> Path:
    """``root/name`` in the official layout (``images/<class>/``, ``train.txt``, ``val.txt``): per class, the first
    ``train`` bundled images (sorted by name) for train and the next ``val`` for val."""
    d = root / name
    lines: dict[str, list[str]] = {"train": [], "val": []}
    for cls in classes:
        (d / "images" / cls).mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(sorted((UCM_MINI / "images" / cls).glob("*.jpg"))[: train + val]):
            shutil.copy(f, d / "images" / cls / f.name)
            lines["train" if i < train else "val"].append(f"./{cls}/{f.name}")
    for split, ls in lines.items():
        (d / f"{split}.txt").write_text("\n".join(ls) + "\n")
    return d


def tiny_satdino(name: str = "test-satdino-tiny-d2", seed: int = 0, *, patch: int = 16,
                 pos_interp: str = "official") -> Any:
    """A ``LoadedModel``: a depth-2 ViT-Tiny SatDINO (random, seeded) with a card of its own."""
    import torch

    from satbench.models.backbones.satdino import SatDINOViT
    from satbench.models.registry import get_card
    from satbench.models.weights import LoadedModel, WeightsInfo

    card = dataclasses.replace(get_card("satdino-vit_small-16"), name=name, arch="vit_tiny", embed_dim=192,
                               feature_dim=192, depth=2, num_heads=3, patch_size=patch, weights={})
    torch.manual_seed(seed)
    model = SatDINOViT(patch_size=patch, embed_dim=192, depth=2, num_heads=3, pos_interp=pos_interp).eval()
    return LoadedModel(model, card, WeightsInfo(source="random", kind="random", seed=seed))
