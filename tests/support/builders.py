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


def numpy_weights(state: dict[str, Any], seed: int, scale: float = 0.05) -> dict[str, Any]:
    """Every float tensor of ``state`` redrawn from numpy's ``default_rng(seed)`` (N(0, scale); norm weights 1 + that),
    in key order: the same draw for the same keys and shapes, whatever library holds them."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for k, v in state.items():
        if not v.is_floating_point():
            out[k] = v.clone()
            continue
        a = np.asarray(rng.standard_normal(tuple(v.shape)), dtype=np.float32) * scale
        if v.ndim == 1 and k.endswith("weight") and "norm" in k:
            a += 1.0
        out[k] = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).reshape(v.shape)
    return out


IMAGENET_PREPROCESSOR = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "do_rescale": True,
                         "rescale_factor": 1 / 255, "do_normalize": True}


def hf_snapshot(folder: Path, model: Any, preprocessor: Any = IMAGENET_PREPROCESSOR) -> Path:
    """``model.save_pretrained(folder)`` (config.json, model.safetensors) plus a ``preprocessor_config.json`` (None:
    none): a transformers snapshot folder as the hub holds one."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    if preprocessor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return folder


def tiny_hf_model(class_name: str, seed: int = 0, **config: Any) -> Any:
    """A tiny transformers vision model (hidden 32, 2 layers, 2 heads, 32 px / patch 8 unless ``config`` says
    otherwise) with numpy-drawn weights (:func:`numpy_weights`), in eval mode. ``CLIPModel`` / ``SiglipModel`` are
    two-tower models whose vision tower gets ``config``."""
    import transformers

    kw = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32,
              patch_size=8)
    kw.update(config)
    if class_name in ("CLIPModel", "SiglipModel"):
        prefix = class_name[:-len("Model")]
        text = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
        cfg = getattr(transformers, f"{prefix}Config")(vision_config=kw, text_config=text)
    else:
        cfg_name = {"DINOv3ViTModel": "DINOv3ViTConfig"}.get(class_name, class_name.replace("Model", "Config"))
        cfg = getattr(transformers, cfg_name)(**kw)
    model = getattr(transformers, class_name)(cfg).eval()
    model.load_state_dict(numpy_weights(model.state_dict(), seed))
    return model


def lay_out_hub_cache(cache: Path, repo: str, commit: str, folder: Path, ref: str = "main") -> Path:
    """The files of ``folder`` in huggingface_hub's cache layout under ``cache`` (blobs, refs/<ref> -> commit,
    snapshots/<commit>/<file> links); returns the snapshot folder."""
    import hashlib
    import os

    base = cache / ("models--" + repo.replace("/", "--"))
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / ref).write_text(commit)
    (base / "blobs").mkdir(exist_ok=True)
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    for f in sorted(folder.iterdir()):
        data = f.read_bytes()
        etag = hashlib.sha256(data).hexdigest()
        (base / "blobs" / etag).write_bytes(data)
        (snap / f.name).symlink_to(os.path.relpath(base / "blobs" / etag, snap))
    return snap


def protocol_copy(folder: Path, name: str, **params: Any) -> Path:
    """A YAML copy of shipped protocol ``name`` in ``folder`` with ``params`` updated (a user's edited protocol file:
    no overrides, its own hash)."""
    import yaml

    from satbench.config.protocols import load_protocol

    proto = yaml.safe_load(open(load_protocol(name).path))
    proto["params"].update(params)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(proto))
    return path
